"""Extensions checked against their definitions: the alliance's (profiles/) and the R4
core's; an extension defined nowhere known is refused unless the server allows any."""

from __future__ import annotations

import pytest

from fhir_server.config import Settings
from fhir_server.package import AlliancePackage
from fhir_server.validation.extensions import ExtensionValidator

EXT = "http://alliance-fhir.org/fhir/StructureDefinition"
VALIDATOR = ExtensionValidator(AlliancePackage.load(Settings()).of_type("StructureDefinition"))
MARK = {"url": "mark", "valueCoding": {"code": "HR"}}
SCOPE = {"url": "scope", "valueCoding": {"code": "alliance"}}


def issues(resource: dict) -> list[tuple[str | None, str]]:
    return [(i.expression, i.diagnostics.split(" / ")[0]) for i in VALIDATOR.validate(resource)]


def test_simple_extension_value_type_and_context():
    good = {"resourceType": "ServiceRequest", "extension": [
        {"url": f"{EXT}/referral-direction", "valueCoding": {"code": "up"}}]}
    assert issues(good) == []
    wrong_type = {"resourceType": "ServiceRequest", "extension": [
        {"url": f"{EXT}/referral-direction", "valueString": "up"}]}
    assert issues(wrong_type)[0][0] == "ServiceRequest.extension[0]"
    assert "type Coding" in issues(wrong_type)[0][1]
    wrong_place = {"resourceType": "Patient", "extension": [
        {"url": f"{EXT}/referral-direction", "valueCoding": {"code": "up"}}]}
    assert "not allowed on Patient" in issues(wrong_place)[0][1]
    missing = {"resourceType": "ServiceRequest", "extension": [
        {"url": f"{EXT}/referral-direction"}]}
    assert "needs a value" in issues(missing)[0][1]


def test_extension_on_a_data_type():
    patient = {"resourceType": "Patient", "address": [{"extension": [
        {"url": f"{EXT}/division-code", "valueCode": "500112"}]}]}
    assert issues(patient) == []
    misplaced = {"resourceType": "Patient", "extension": [
        {"url": f"{EXT}/division-code", "valueCode": "500112"}]}
    assert "only on Address" in issues(misplaced)[0][1]


@pytest.mark.parametrize(("parts", "expected"), [
    ([MARK, SCOPE], []),
    ([MARK, SCOPE, {"url": "assessment-year", "valuePositiveInt": 2026}], []),
    ([MARK], [("Observation.extension[0].extension", "needs its 'scope' part")]),
    ([MARK, {"url": "scope", "valueString": "alliance"}],
     [("Observation.extension[0].extension[1]", "type Coding, not String")]),
])
def test_complex_result_recognition(parts, expected):
    resource = {"resourceType": "Observation", "extension": [
        {"url": f"{EXT}/result-recognition", "extension": parts}]}
    found = issues(resource)
    assert len(found) == len(expected)
    for (where, text), (want_where, want_text) in zip(found, expected, strict=True):
        assert where == want_where and want_text in text


def test_unknown_extensions_are_refused_unless_any_is_allowed():
    other = {"resourceType": "Patient", "name": [{"family": "张", "extension": [
        {"url": "http://x.cn/y", "valueString": "z"}]}]}
    assert issues(other) == [("Patient.name[0].extension[0]",
                              "The extension http://x.cn/y could not be found so is not "
                              "allowed here")]
    lenient = ExtensionValidator(AlliancePackage.load(Settings()).of_type(
        "StructureDefinition"), allow_any=True)
    assert lenient.validate(other) == []


CORE = "http://hl7.org/fhir/StructureDefinition"


@pytest.mark.parametrize(("resource", "expected"), [
    # patient-birthTime: only on Patient.birthDate, as a primitive's extension
    ({"resourceType": "Patient", "birthDate": "1958-03-14", "_birthDate": {"extension": [
        {"url": f"{CORE}/patient-birthTime", "valueDateTime": "1958-03-14T08:30:00+08:00"}]}},
     []),
    ({"resourceType": "Patient", "name": [{"family": "张", "extension": [
        {"url": f"{CORE}/patient-birthTime", "valueDateTime": "1958-03-14T08:30:00+08:00"}]}]},
     [("Patient.name[0].extension[0]", "not allowed on Patient.name")]),
    ({"resourceType": "Patient", "birthDate": "1958-03-14", "_birthDate": {"extension": [
        {"url": f"{CORE}/patient-birthTime", "valueString": "早上"}]}},
     [("Patient._birthDate.extension[0]", "takes a value of type dateTime")]),
    # an extension allowed on a data type, wherever the type stands
    ({"resourceType": "Organization", "name": "卫生院", "address": [{"line": ["x"], "extension": [
        {"url": f"{CORE}/geolocation", "extension": [
            {"url": "latitude", "valueDecimal": 29.5}, {"url": "longitude",
                                                        "valueDecimal": 106.5}]}]}]}, []),
    # allowed on any element
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x", "extension": [
        {"url": f"{CORE}/data-absent-reason", "valueCode": "unknown"}]}}, []),
    # conformance resources carry the spec's tooling extensions unchecked
    ({"resourceType": "ValueSet", "status": "draft", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/valueset-definition",
         "valueString": "x"}]}, []),
])
def test_core_extensions_and_their_contexts(resource, expected):
    found = issues(resource)
    assert len(found) == len(expected), found
    for (where, text), (want_where, want_text) in zip(found, expected, strict=True):
        assert where == want_where and want_text in text


def test_write_refuses_a_misused_extension(client):
    response = client.post("/ServiceRequest", json={
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"},
        "extension": [{"url": f"{EXT}/referral-direction", "valueString": "up"}]})
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["ServiceRequest.extension[0]"]
