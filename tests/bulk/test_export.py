"""Bulk $export end to end, in process: kick-off at every level, polling, manifests, files
equal to the stored bytes, filters, the snapshot, cancel, expiry, resume, de-identification."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from bulk_support import ASYNC, finished, kick_off, lines
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
PRIVATE = {"resourceType": "Patient", "id": "private",
           "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">"
                    "王小明 13800138000</div>"},
           "name": [{"text": "王小明", "family": "王", "given": ["小明"]}],
           "telecom": [{"system": "phone", "value": "13800138000"}],
           "identifier": [{"system": RESIDENT_ID, "value": "11010519491231002X"}],
           "birthDate": "1949-12-31", "gender": "male",
           "address": [{"line": ["东城区某街1号"], "text": "北京市东城区某街1号",
                        "extension": [{"url": "http://alliance-fhir.org/fhir/Structure"
                                       "Definition/division-code", "valueCode": "110101001"}]}]}
OBSERVATION = {"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}],
                        "text": "血红蛋白"},
               "subject": {"reference": "Patient/private", "display": "王小明"},
               "valueQuantity": {"value": 135, "unit": "g/L"}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Client, Settings]]:
    settings = Settings(storage=f"sqlite:///{tmp_path / 'bulk.db'}")
    load_demo(settings)
    with Client(build_app(settings)) as client:
        assert client.put("/Patient/private", json=PRIVATE).status_code == 201
        assert client.post("/Observation", json=OBSERVATION).status_code == 201
        yield client, settings


def stored(client: Client, line: bytes) -> bytes:
    resource = orjson.loads(line)
    return client.get(f"/{resource['resourceType']}/{resource['id']}").content


def test_system_export_holds_every_resource_as_stored(server):
    client, _ = server
    assert client.get("/$export").status_code == 400  # no Prefer: respond-async
    manifest = finished(client, kick_off(client, "/$export"))
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    assert manifest["request"].endswith("/$export") and manifest["transactionTime"]
    exported = lines(client, manifest)
    assert all(stored(client, line) == line for line in exported)  # the same bytes
    kinds = [orjson.loads(line)["resourceType"] for line in exported]
    for rtype in ("Patient", "Observation", "StructureDefinition", "Organization"):
        assert kinds.count(rtype) == client.get(f"/{rtype}?_summary=count").json()["total"]


def test_type_since_type_filter_and_elements(server):
    client, _ = server
    manifest = finished(client, kick_off(client, "/$export?_type=Patient,Observation"))
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Observation"}
    later = client.get("/Patient/private").json()["meta"]["lastUpdated"]
    time.sleep(0.01)
    client.put("/Patient/he-lan", json={**client.get("/Patient/he-lan").json(),
                                        "active": False})
    since = finished(client, kick_off(client, f"/$export?_type=Patient&_since={later}"))
    assert [orjson.loads(x)["id"] for x in lines(client, since)] == ["he-lan"]
    filtered = finished(client, kick_off(
        client, "/$export?_type=Patient,Observation&_typeFilter=Patient%3Fgender%3Dmale,"
                "Patient%3Fbirthdate%3Dlt1950&_typeFilter=Observation%3Fcode%3D718-7"))
    rows = [orjson.loads(x) for x in lines(client, filtered)]
    patients = {r["id"] for r in rows if r["resourceType"] == "Patient"}
    assert patients == {p["resource"]["id"] for p in client.get(
        "/Patient?gender=male&_count=100").json()["entry"]} | {"he-lan"}
    assert {r["code"]["coding"][0]["code"] for r in rows if r["resourceType"] == "Observation"} \
        == {"718-7"}
    slim = finished(client, kick_off(client, "/$export?_type=Patient&_elements=gender"))
    for row in map(orjson.loads, lines(client, slim)):
        assert "name" not in row and "gender" in row
        assert row["meta"]["tag"][-1]["code"] == "SUBSETTED"


@pytest.mark.parametrize(("query", "where"), [
    ("_type=Nothing", "_type"),
    ("_type=Patient&_typeFilter=Observation%3Fcode%3Dx", "_typeFilter"),
    ("_typeFilter=Observation%3Fnot-a-param%3Dx", "not-a-param"),
    ("_typeFilter=code%3Dx", "_typeFilter"),
    ("_since=yesterday", "_since"),
    ("_since=2026-02-30T00:00:00Z", "_since"),
    ("_outputFormat=text/csv", "_outputFormat"),
    ("_frobnicate=1", "_frobnicate"),
    ("includeAssociatedData=Everything", "includeAssociatedData"),
])
def test_bad_kick_offs_answer_400_naming_the_parameter(server, query, where):
    client, _ = server
    answer = client.get(f"/$export?{query}", headers=ASYNC)
    assert answer.status_code == 400, answer.text
    issue = answer.json()["issue"][0]
    assert where in (issue.get("expression") or [""])[0] + issue["diagnostics"]


def test_patient_and_group_exports_hold_only_their_patients(server):
    client, _ = server
    whole = [orjson.loads(x) for x in lines(client, finished(
        client, kick_off(client, "/Patient/$export")))]
    kinds = {r["resourceType"] for r in whole}
    assert "Patient" in kinds and "Observation" in kinds and "Organization" not in kinds
    group = {"resourceType": "Group", "id": "cohort", "type": "person", "actual": True,
             "member": [{"entity": {"reference": "Patient/private"}}]}
    assert client.put("/Group/cohort", json=group).status_code == 201
    rows = [orjson.loads(x) for x in lines(client, finished(
        client, kick_off(client, "/Group/cohort/$export")))]
    assert {r["id"] for r in rows if r["resourceType"] == "Patient"} == {"private"}
    assert all(r["subject"]["reference"] == "Patient/private" for r in rows
               if r["resourceType"] == "Observation")
    assert sorted(r["resourceType"] for r in rows) == ["Group", "Observation", "Patient"]
    posted = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient"},
        {"name": "patient", "valueReference": {"reference": "Patient/zhang-san"}}]}
    rows = lines(client, finished(client, kick_off(client, "/Patient/$export", method="POST",
                                                   json=posted)))
    assert [orjson.loads(x)["id"] for x in rows] == ["zhang-san"]
    things = {**group, "id": "things", "type": "device",
              "member": [{"entity": {"reference": "Organization/lead"}}]}
    client.put("/Group/things", json=things)
    assert client.get("/Group/things/$export", headers=ASYNC).status_code == 400
    assert client.get("/Group/nobody/$export", headers=ASYNC).status_code == 404
    assert client.get("/Patient/$export?_type=Organization", headers=ASYNC).status_code == 400


def test_the_export_is_a_snapshot_at_kick_off(server):
    _, settings = server
    with Client(build_app(replace(settings, export_batch=1))) as client:
        snapshot(client)


def snapshot(client: Client) -> None:
    """Many batches of one, interleaved with writes made after kick-off."""
    before = client.get("/Patient/zhang-san").content
    status = kick_off(client, "/$export?_type=Patient")
    changed = {**orjson.loads(before), "gender": "other"}
    client.put("/Patient/zhang-san", json=changed)
    client.delete("/Patient/liu-mei")
    client.put("/Patient/newcomer", json={"resourceType": "Patient", "id": "newcomer"})
    rows = lines(client, finished(client, status))
    ids = [orjson.loads(x)["id"] for x in rows]
    assert "newcomer" not in ids and "liu-mei" in ids and len(ids) == len(set(ids))
    assert before in rows  # the version current at kick-off


def test_cancel_expiry_and_limits(server, tmp_path):
    client, settings = server
    status = kick_off(client, "/$export")
    assert client.delete(status).status_code == 202
    assert client.get(status).status_code == 404
    assert client.delete(status).status_code == 404
    assert client.get("/$export-status/unknown").status_code == 404
    job = status.rsplit("/", 1)[1]
    assert not (Path(settings.export_folder) / job).exists()
    with Client(build_app(replace(settings, export_expiry=1))) as short:
        done = finished(short, kick_off(short, "/$export?_type=Patient"))
        time.sleep(1.1)
        assert short.get(done["output"][0]["url"]).status_code == 404
    with Client(build_app(replace(settings, export_max_jobs=0))) as busy:
        refused = busy.get("/$export", headers=ASYNC)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_a_job_resumes_after_a_restart_without_losing_or_repeating(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'resume.db'}", export_batch=2)
    load_demo(settings)
    with Client(build_app(settings)) as first:
        status = kick_off(first, "/$export?_type=Patient,Observation,Organization")
        first.get("/metadata")  # the job runs a little, then the server stops
    with Client(build_app(settings)) as second:
        manifest = finished(second, status)
        rows = lines(second, manifest)
        ids = [(orjson.loads(x)["resourceType"], orjson.loads(x)["id"]) for x in rows]
        assert len(ids) == len(set(ids))
        for rtype in ("Patient", "Observation", "Organization"):
            total = second.get(f"/{rtype}?_summary=count").json()["total"]
            assert sum(1 for t, _ in ids if t == rtype) == total


def test_files_are_split_by_size(server):
    _, settings = server
    with Client(build_app(replace(settings, export_file_bytes=1))) as small:
        manifest = finished(small, kick_off(small, "/$export?_type=Patient"))
        assert len(manifest["output"]) == 5 and {o["count"] for o in manifest["output"]} == {1}


def test_de_identified_export_hides_people_but_keeps_links(server):
    client, _ = server
    manifest = finished(client, kick_off(client, "/Patient/$export?deidentify=true"))
    rows = lines(client, manifest)
    text = b"\n".join(rows).decode()
    for secret in ("王小明", "13800138000", "11010519491231002X", "东城区某街", "张三",
                   "500112195803140317", "zhang-san", "private"):
        assert secret not in text, secret
    resources = [orjson.loads(x) for x in rows]
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    patient = next(r for r in resources if r["resourceType"] == "Patient"
                   and r.get("birthDate") == "1949" and r.get("gender") == "male")
    assert patient["address"] == [{"extension": [{"url": "http://alliance-fhir.org/fhir/"
                                                  "StructureDefinition/division-code",
                                                  "valueCode": "110101"}]}]
    assert patient["identifier"] == [{"system": RESIDENT_ID}]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    assert all(o["subject"]["reference"] in ids for o in observations)  # links kept
    assert any(o["valueQuantity"]["value"] == 135 for o in observations)


def test_the_capability_statement_declares_export_and_its_definition(server):
    client, _ = server
    rest = client.get("/metadata").json()["rest"][0]
    url = "http://alliance-fhir.org/fhir/OperationDefinition/export-deidentified"
    assert {"name": "export", "definition": url} in rest["operation"]
    for rtype in ("Patient", "Group"):
        entry = next(r for r in rest["resource"] if r["type"] == rtype)
        assert {"name": "export", "definition": url} in entry["operation"]
    definition = client.get(f"/OperationDefinition?url={url}").json()["entry"][0]["resource"]
    assert "deidentify" in [p["name"] for p in definition["parameter"]]
