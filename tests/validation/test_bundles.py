"""Bundles validated as Bundles (type, fullUrls, bdl-* invariants, every entry), and
$validate / ``alliance-fhir validate`` for every R4 resource type, stored here or not."""

from __future__ import annotations

import orjson
import pytest

from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.package import AlliancePackage
from fhir_server.validation.check import Checks, check_resource
from fhir_server.validation.structure import StructureValidator

VALIDATOR = StructureValidator()
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def errors(bundle: dict) -> list[tuple[str, str | None]]:
    return [(i.diagnostics.split(":")[0], i.expression) for i in VALIDATOR.validate(bundle)
            if i.severity == "error"]


def bundle(kind: str, *entries: dict, **elements: object) -> dict:
    return {"resourceType": "Bundle", "type": kind, **elements,
            **({"entry": list(entries)} if entries else {})}


@pytest.mark.parametrize(("resource", "expected"), [
    (bundle("collection", {"fullUrl": "urn:uuid:1b4e", "resource": PATIENT}), []),
    (bundle("bogus"), [("The value provided ('bogus') is not in the value set 'BundleType' "
                        "(http", "Bundle.type")]),
    (bundle("collection", {"fullUrl": "Patient/p1", "resource": PATIENT}),
     [("fullUrl 'Patient/p1' must be an absolute URL (http…, urn", "Bundle.entry[0].fullUrl")]),
    (bundle("collection", {"fullUrl": "http://a.cn/fhir/Patient/p2", "resource": PATIENT}),
     [("fullUrl 'http", "Bundle.entry[0].fullUrl")]),
    (bundle("collection", {"fullUrl": "http://a.cn/fhir/Patient/p1/_history/2",
                           "resource": PATIENT}), [("bdl-8", "Bundle.entry[0].fullUrl")]),
    (bundle("collection", {"fullUrl": "urn:uuid:1", "resource": PATIENT},
            {"fullUrl": "urn:uuid:1", "resource": PATIENT}),
     [("bdl-7", "Bundle.entry[1].fullUrl")]),
    (bundle("collection", total=1), [("bdl-1", "Bundle.total")]),
    (bundle("transaction", {"resource": PATIENT}), [("bdl-3", "Bundle.entry[0].request")]),
    (bundle("collection", {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}}),
     [("bdl-3", "Bundle.entry[0].request")]),
    (bundle("batch-response", {"resource": PATIENT}),
     [("bdl-4", "Bundle.entry[0].response")]),
    (bundle("collection", {"resource": PATIENT, "search": {"mode": "match"}}),
     [("bdl-2", "Bundle.entry[0].search")]),
    (bundle("document", {"resource": PATIENT}),
     [("bdl-11", "Bundle.entry[0]"), ("bdl-9", "Bundle.identifier"),
      ("bdl-10", "Bundle.timestamp")]),
    (bundle("message", {"resource": PATIENT}), [("bdl-12", "Bundle.entry[0]")]),
    # every entry is validated, its issues placed in the Bundle
    (bundle("collection", {"resource": {**PATIENT, "gender": "males"}}),
     [("The value provided ('males') is not in the value set 'AdministrativeGender' (http",
       "Bundle.entry[0].resource.gender")]),
])
def test_bundles_are_validated_as_bundles(resource, expected):
    assert errors(resource) == expected


def test_a_bundle_nested_in_a_bundle_has_its_own_place():
    inner = bundle("transaction", {"resource": PATIENT})
    found = errors(bundle("collection", {"fullUrl": "urn:uuid:2", "resource": inner}))
    assert found == [("bdl-3", "Bundle.entry[0].resource.entry[0].request")]


@pytest.mark.parametrize(("rtype", "resource", "valid"), [
    ("Bundle", bundle("collection", {"fullUrl": "urn:uuid:1", "resource": PATIENT}), True),
    ("Bundle", bundle("bogus", {"fullUrl": "Patient/p1", "resource": PATIENT}), False),
    ("Parameters", {"resourceType": "Parameters",
                    "parameter": [{"name": "a", "valueString": "x"}]}, True),
    ("Parameters", {"resourceType": "Parameters", "parameter": [{"name": "a"}]}, False),  # inv-1
    ("Parameters", {"resourceType": "Parameters", "parameter": [{"value": "x"}]}, False),
    ("Encounter", {"resourceType": "Encounter", "status": "arrived",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                             "code": "AMB"}}, True),
    ("Location", {"resourceType": "Location", "status": "gone"}, False),
    ("Questionnaire", {"resourceType": "Questionnaire", "status": "draft"}, True),
])
def test_validate_works_for_every_r4_type(client, rtype, resource, valid):
    answer = client.post(f"/{rtype}/$validate", json=resource)
    assert answer.status_code == 200, answer.text
    severities = {i["severity"] for i in answer.json()["issue"]}
    assert ("error" not in severities) is valid, answer.json()


def test_validate_still_refuses_an_unknown_type_and_deletes_of_unserved_types(client):
    assert client.post("/Unicorn/$validate", json={"resourceType": "Unicorn"}
                       ).status_code == 404


def test_the_cli_validates_a_bundle_as_a_bundle(tmp_path, capsys):
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps(bundle("bogus", {"fullUrl": "Patient/p1",
                                                   "resource": PATIENT})))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Bundle.type" in out and "Bundle.entry[0].fullUrl" in out
    path.write_bytes(orjson.dumps(bundle("collection", {"fullUrl": "urn:uuid:1",
                                                        "resource": PATIENT})))
    assert main(["validate", str(path)]) == 0


def test_an_entry_is_checked_once():
    package = AlliancePackage.load(Settings())
    checks = Checks.from_package(package.profiles, package.terminology)
    patient = {**PATIENT, "extension": [{"url": "http://x.cn/y", "valueString": "z"}]}
    found = check_resource(checks, bundle("collection", {"fullUrl": "urn:uuid:1",
                                                         "resource": patient}))
    assert [i.expression for i in found] == ["Bundle.entry[0].resource.extension[0]"]
