"""Coded values against the R4 core: required bindings refuse, extensible warn, preferred
inform; a Coding in a complete core CodeSystem must name one of its codes."""

from __future__ import annotations

import pytest

from fhir_server.validation.structure import StructureValidator

VALIDATOR = StructureValidator()
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def found(resource: dict) -> list[tuple[str, str | None]]:
    return [(i.severity, i.expression) for i in VALIDATOR.validate(resource)]


def observation(**elements: object) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "血糖"},
            **elements}


@pytest.mark.parametrize(("resource", "expected"), [
    ({"resourceType": "Patient", "gender": "males"}, [("error", "Patient.gender")]),
    ({"resourceType": "Patient", "gender": "female"}, []),
    (observation(status="done"), [("error", "Observation.status")]),
    # a required binding inside a data type and a backbone element
    ({"resourceType": "Patient", "telecom": [{"system": "wechat", "value": "x"}]},
     [("error", "Patient.telecom[0].system")]),
    ({"resourceType": "Patient", "contact": [{"gender": "f", "name": {"text": "李四"}}]},
     [("error", "Patient.contact[0].gender")]),
    # a required binding on a choice element's code form
    ({"resourceType": "Questionnaire", "status": "active",
      "item": [{"linkId": "1", "type": "dropdown"}]}, [("error", "Questionnaire.item[0].type")]),
    # extensible: a warning; a code of another system than the ValueSet's
    ({"resourceType": "Patient", "maritalStatus": {"coding": [
        {"system": "http://example.org/married", "code": "x"}]}},
     [("warning", "Patient.maritalStatus")]),
    ({"resourceType": "Patient", "maritalStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]}},
     []),
    # preferred: an information; text alone is no finding
    (observation(category=[{"coding": [{"system": "http://example.org", "code": "lab"}]}]),
     [("information", "Observation.category[0]")]),
    (observation(category=[{"text": "检验"}]), []),
    # an unknown code in a complete core CodeSystem is an error wherever the Coding is
    (observation(category=[{"coding": [{"system": CATEGORY, "code": "labx"}]}]),
     [("error", "Observation.category[0].coding[0].code"),
      ("information", "Observation.category[0]")]),
    (observation(code={"coding": [{"system": "http://loinc.org", "code": "no-such"}]}), []),
])
def test_coded_values(resource, expected):
    assert found(resource) == expected


def test_a_required_codeable_concept_needs_a_code():
    resource = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p"},
                "clinicalStatus": {"text": "still there"}}
    issues = [i for i in VALIDATOR.validate(resource) if i.severity == "error"]
    assert [(i.severity, i.expression) for i in issues] == [
        ("error", "AllergyIntolerance.clinicalStatus")]
    assert "No code provided" in issues[0].diagnostics


def test_the_message_names_the_value_and_the_value_set():
    issue, = VALIDATOR.validate({"resourceType": "Patient", "gender": "males"})
    assert issue.code == "code-invalid"
    assert issue.diagnostics == (
        "The value provided ('males') is not in the value set 'AdministrativeGender' "
        "(http://hl7.org/fhir/ValueSet/administrative-gender), and a code is required from "
        "this value set")


def test_writes_with_a_code_outside_a_required_binding_are_refused(client):
    answer = client.put("/Patient/p1", json={"resourceType": "Patient", "id": "p1",
                                             "gender": "males"})
    assert answer.status_code == 400  # the base rules of FHIR are broken (not a profile's)
    issue, = answer.json()["issue"]
    assert issue["expression"] == ["Patient.gender"] and issue["code"] == "code-invalid"
    assert client.get("/Patient/p1").status_code == 404
    checked = client.post("/Observation/$validate", json=observation(status="done"))
    assert checked.status_code == 200
    assert [i["severity"] for i in checked.json()["issue"]] == ["error"]
