"""Every client error answers a 4xx OperationOutcome saying what and where; nothing is stored."""

from __future__ import annotations

import orjson
import pytest
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

JSON = {"content-type": "application/fhir+json"}
PATIENT = b'{"resourceType": "Patient", "name": [{"family": "Li"}]}'

# (method, url, body, headers, status, issue code, expression or None, words in diagnostics)
CASES = [
    ("POST", "/Patient", b'{"resourceType": "Patient",\n "name": [}', JSON, 400, "invalid",
     None, "line 2, column 11"),
    ("POST", "/Patient", b"", JSON, 400, "invalid", None, "empty"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "name": "\xff"}', JSON, 400, "invalid",
     None, "UTF-8"),
    ("POST", "/Patient", b"[1, 2]", JSON, 400, "invalid", None, "JSON object"),
    ("POST", "/Patient", b'{"name": []}', JSON, 400, "invalid", "resourceType",
     "no resourceType"),
    ("POST", "/Unicorn", PATIENT, JSON, 404, "not-found", "Unicorn", "not supported"),
    ("POST", "/Patient", b'{"resourceType": "Unicorn"}', JSON, 400, "invalid", "resourceType",
     "Unicorn"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "colour": "red"}', JSON, 400,
     "structure", "Patient.colour", "Unknown element"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "birthDate": "1990-02-30x"}', JSON, 400,
     "value", "Patient.birthDate", "Invalid date"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "active": "yes"}', JSON, 400, "value",
     "Patient.active", "boolean"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "name": {"family": "Li"}}', JSON, 400,
     "structure", "Patient.name", "array"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "gender": ["male"]}', JSON, 400,
     "structure", "Patient.gender", "not be an array"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "name": []}', JSON, 400, "invalid",
     "Patient.name", "empty"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "contact": [{}]}', JSON, 400, "invalid",
     "Patient.contact[0]", "value or children"),
    ("POST", "/Patient",
     b'{"resourceType": "Patient", "deceasedBoolean": true, "deceasedDateTime": "2020"}', JSON,
     400, "structure", "Patient.deceasedDateTime", "Only one of"),
    ("POST", "/Observation", b'{"resourceType": "Observation", "status": "final"}', JSON, 400,
     "required", "Observation.code", "Missing required"),
    ("POST", "/Observation",
     b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, '
     b'"valueQuantity": {"value": "7"}}', JSON, 400, "value",
     "Observation.valueQuantity.value", "number"),
    ("POST", "/Patient",
     b'{"resourceType": "Patient", "extension": [{"url": "http://x", "valueString": "a", '
     b'"extension": [{"url": "y", "valueString": "b"}]}]}', JSON, 400, "invariant",
     "Patient.extension[0]", "ext-1"),
    ("POST", "/Patient",
     b'{"resourceType": "Patient", "managingOrganization": {"reference": "Unicorn/1"}}', JSON,
     400, "value", "Patient.managingOrganization.reference", "Invalid reference"),
    ("POST", "/Patient",
     b'{"resourceType": "Patient", "managingOrganization": {"reference": "Organization/nope"}}',
     JSON, 400, "not-found", "Patient.managingOrganization.reference", "does not resolve"),
    ("POST", "/Patient",
     b'{"resourceType": "Patient", "contained": [{"resourceType": "Patient", "bad": 1}]}', JSON,
     400, "structure", "Patient.contained[0].bad", "Unknown element"),
    ("POST", "/Patient", PATIENT, {"content-type": "application/xml"}, 415, "not-supported",
     "Content-Type", "not supported"),
    ("GET", "/Patient?_format=xml", b"", {}, 406, "not-supported", "_format", "JSON"),
    ("GET", "/Patient", b"", {"accept": "application/fhir+xml"}, 406, "not-supported", "Accept",
     "not supported"),
    ("PUT", "/Patient/a", PATIENT, JSON, 400, "invalid", "Patient.id", "must carry an id"),
    ("PUT", "/Patient/a", b'{"resourceType": "Patient", "id": "b"}', JSON, 400, "invalid",
     "Patient.id", "does not match"),
    ("PUT", "/Patient/a", b'{"resourceType": "Observation", "id": "a"}', JSON, 400, "invalid",
     "resourceType", "URL names Patient"),
    ("PUT", "/Patient/a_b", b'{"resourceType": "Patient", "id": "a_b"}', JSON, 400, "value",
     "Patient.id", "Invalid id"),
    ("PUT", "/Patient/a", b'{"resourceType": "Patient", "id": "a"}',
     {**JSON, "if-match": "nonsense"}, 400, "invalid", "If-Match", "ETag"),
    ("GET", "", b"", {}, 400, "invalid", None, "resource type"),
    ("GET", "/Patient/a/b/c/d", b"", {}, 400, "invalid", None, "No FHIR interaction"),
    ("DELETE", "/Patient", b"", {}, 400, "invalid", "Patient", "needs search criteria"),
    ("PUT", "/Patient/a/_history", b"", {}, 405, "not-supported", None, "not allowed"),
    ("GET", "/Patient?_count=many", b"", {}, 400, "invalid", "_count", "integer"),
    ("GET", "/Patient/_history?_since=yesterday", b"", {}, 400, "invalid", "_since",
     "Invalid date"),
    ("GET", "/Patient/a?_summary=maybe", b"", {}, 404, "not-found", None, "not known"),
    ("POST", "", b'{"resourceType": "Patient"}', JSON, 400, "invalid", "Bundle", "Bundle"),
    ("POST", "", b'{"resourceType": "Bundle", "type": "collection"}', JSON, 400, "invalid",
     "Bundle.type", "transaction, batch"),
    ("POST", "", b'{"resourceType": "Bundle", "type": "transaction", "entry": [{}]}', JSON, 400,
     "invalid", "Bundle.entry[0].request", "needs a request"),
    ("POST", "",
     b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"request": '
     b'{"method": "FETCH", "url": "Patient"}}]}', JSON, 400, "invalid",
     "Bundle.entry[0].request.method", "Unknown"),
    ("POST", "",
     b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": '
     b'{"resourceType": "Patient", "x": 1}, "request": {"method": "POST", "url": "Patient"}}]}',
     JSON, 400, "structure", "Bundle.entry[0].resource.Patient.x", "Unknown element"),
    ("PATCH", "/Patient/a", b"[]", {"content-type": "text/plain"}, 415, "not-supported",
     "Content-Type", "not supported"),
    # found by trying (issue 12): each answered 500 before
    ("GET", "/Patient/a/_history/99999999999999999999", b"", {}, 404, "not-found", None,
     "not known"),
    ("PUT", "/Patient/a", b'{"resourceType": "Patient", "id": ' + b"[" * 70 + b'"a"' + b"]" * 70
     + b"}", JSON, 400, "invalid", "Patient.id" + "[0]" * 63, "deeper than 64"),
    ("POST", "", b'{"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": '
     b'"POST", "url": "Patient"}, "resource": {"resourceType": "Patient", "id": ' + b"[" * 200
     + b"1" + b"]" * 200 + b"}}]}", JSON, 400, "invalid",
     "Bundle.entry[0].resource.id" + "[0]" * 60, "deeper than 64"),
    ("POST", "/Patient/$validate", b'{"resourceType": "Patient", "id": ' + b"[" * 300 + b"1"
     + b"]" * 300 + b"}", JSON, 400, "invalid", "Patient.id" + "[0]" * 63, "deeper than 64"),
    ("POST", "/Patient", b'{"resourceType": "Patient", "name": [{"text": "'
     + b"x" * (1024 * 1024 + 1) + b'"}]}', JSON, 400, "value", "Patient.name[0].text",
     "may not exceed 1 MB"),
]


@pytest.mark.parametrize(("method", "url", "body", "headers", "status", "code", "expression",
                          "words"), CASES, ids=[f"{c[0]} {c[1]} {c[6]} {c[7]}" for c in CASES])
def test_bad_input(client, method, url, body, headers, status, code, expression, words):
    response = client.request(method, url, content=body, headers=headers)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert words.lower() in issue["diagnostics"].lower()
    if expression:
        assert issue["expression"] == [expression]
    assert client.get("/Patient").json()["total"] == 0  # nothing half-written


def test_body_too_large(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", max_body_bytes=100)
    with Client(build_app(settings)) as small:
        response = small.post("/Patient", content=b'{"resourceType": "Patient", "name": [{"text": "'
                              + b"x" * 200 + b'"}]}', headers=JSON)
        assert response.status_code == 413
        assert response.json()["issue"][0]["code"] == "too-costly"


def test_too_many_bundle_entries(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", max_bundle_entries=3)
    entry = {"request": {"method": "POST", "url": "Patient"},
             "resource": {"resourceType": "Patient"}}
    with Client(build_app(settings)) as small:
        for kind in ("transaction", "batch"):
            response = small.post("", json={"resourceType": "Bundle", "type": kind,
                                            "entry": [entry] * 4})
            assert response.status_code == 413
            issue = response.json()["issue"][0]
            assert issue["expression"] == ["Bundle.entry"] and "at most 3" in issue["diagnostics"]
        assert small.get("/Patient").json()["total"] == 0


def test_a_json_patch_may_not_grow_past_the_body_limit(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", max_body_bytes=20_000)
    with Client(build_app(settings)) as small:
        small.put("/Patient/a", json={"resourceType": "Patient", "id": "a",
                                      "name": [{"text": "张三" * 100}]})
        doubling = [{"op": "copy", "from": "/name", "path": "/name/-"}] * 30  # 2**30 names
        response = small.patch("/Patient/a", content=orjson.dumps(doubling),
                               headers={"content-type": "application/json-patch+json"})
        assert response.status_code == 413
        issue = response.json()["issue"][0]
        assert "exceed 20000 bytes" in issue["diagnostics"]
        assert issue["expression"][0].startswith("[")  # the operation that would pass it
        assert small.get("/Patient/a").json()["meta"]["versionId"] == "1"


def test_no_patch_may_grow_a_resource_past_the_body_limit(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", max_body_bytes=3000)
    with Client(build_app(settings)) as small:
        small.put("/Patient/a", json={"resourceType": "Patient", "id": "a",
                                      "name": [{"text": "x" * 1500}]})
        add = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "name"},
            {"name": "value", "valueHumanName": {"text": "y" * 1500}}]}]}
        assert small.patch("/Patient/a", json=add).status_code == 413
        merge = {"address": [{"text": "z" * 1500}]}  # a merge patch, kept with the name
        assert small.patch("/Patient/a", json=merge).status_code == 413
        assert small.get("/Patient/a").json()["meta"]["versionId"] == "1"


def test_extreme_valid_instants_are_stored_and_found(client):
    for instant in ("9999-12-31T23:59:59.999999999+14:00", "0001-01-01T00:00:00+14:00",
                    "0001-01-01T00:00:00-12:00"):
        created = client.post("/DiagnosticReport", json={
            "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
            "effectiveDateTime": instant})
        assert created.status_code == 201, created.text
        found = client.get("/DiagnosticReport", params={"date": instant})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [created.json()["id"]]
    assert client.get("/DiagnosticReport", params={"date": "ge9999"}).json()["total"] == 1
    assert client.get("/DiagnosticReport", params={"date": "lt0001-01-02"}).json()["total"] == 2


def test_deep_nesting_is_refused(client):
    nested = b'{"url": "http://x", "extension": [' * 400 + b'{"url": "y", "valueString": "z"}' \
        + b"]}" * 400
    body = b'{"resourceType": "Patient", "extension": [' + nested + b"]}"
    response = client.post("/Patient", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_delete_of_referenced_resource_is_a_conflict(client):
    client.put("/Organization/o1", json={"resourceType": "Organization", "id": "o1", "name": "院"})
    client.put("/Patient/p1", json={"resourceType": "Patient", "id": "p1",
                                    "managingOrganization": {"reference": "Organization/o1"}})
    response = client.delete("/Organization/o1")
    assert response.status_code == 409
    issue = response.json()["issue"][0]
    assert issue["code"] == "conflict" and "Patient/p1" in issue["diagnostics"]
    assert client.get("/Organization/o1").status_code == 200
    client.delete("/Patient/p1")
    assert client.delete("/Organization/o1").status_code == 204
