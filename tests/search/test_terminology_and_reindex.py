"""Token modifiers backed by stored terminology, and $reindex for stored SearchParameters."""

from __future__ import annotations

import sqlite3

from support import PACKAGE_SIZE, Client

from fhir_server.app import build_app
from fhir_server.cli import main

GENDER = "http://hl7.org/fhir/administrative-gender"
DEPT = "http://alliance-fhir.org/fhir/CodeSystem/department"
CODE_SYSTEM = {
    "resourceType": "CodeSystem", "id": "department", "url": DEPT, "status": "active",
    "content": "complete", "hierarchyMeaning": "is-a",
    "concept": [{"code": "03", "display": "内科", "concept": [
        {"code": "03.01", "display": "呼吸内科专业"}, {"code": "03.02", "display": "消化内科专业",
                                                 "concept": [{"code": "03.02.1",
                                                              "display": "胃肠"}]}]},
                {"code": "04", "display": "外科"}]}
VALUE_SETS = [
    {"resourceType": "ValueSet", "id": "internal", "url": "http://x/vs/internal",
     "status": "active", "compose": {"include": [{"system": DEPT, "filter": [
         {"property": "concept", "op": "is-a", "value": "03.02"}]}]}},
    {"resourceType": "ValueSet", "id": "listed", "url": "http://x/vs/listed",
     "status": "active", "compose": {"include": [{"system": DEPT,
                                                  "concept": [{"code": "04"}]}]}},
    {"resourceType": "ValueSet", "id": "expanded", "url": "http://x/vs/expanded",
     "status": "active", "expansion": {"timestamp": "2026-01-01", "contains": [
         {"system": DEPT, "code": "03.01"}]}},
]


def organisation(oid: str, code: str) -> dict:
    return {"resourceType": "Organization", "id": oid, "name": oid,
            "type": [{"coding": [{"system": DEPT, "code": code}]}]}


def ids(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []))


def test_token_terminology_modifiers(client):
    for resource in [CODE_SYSTEM, *VALUE_SETS, organisation("resp", "03.01"),
                     organisation("gi", "03.02"), organisation("gut", "03.02.1"),
                     organisation("surgery", "04"), organisation("internal", "03")]:
        client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert ids(client, f"/Organization?type:below={DEPT}|03") == ["gi", "gut", "internal",
                                                                   "resp"]
    assert ids(client, f"/Organization?type:below={DEPT}|03.02") == ["gi", "gut"]
    assert ids(client, f"/Organization?type:above={DEPT}|03.02.1") == ["gi", "gut", "internal"]
    assert ids(client, "/Organization?type:in=http://x/vs/internal") == ["gi", "gut"]
    assert ids(client, "/Organization?type:in=http://x/vs/listed,http://x/vs/expanded") == [
        "resp", "surgery"]
    assert ids(client, "/Organization?type:not-in=http://x/vs/internal") == [
        "internal", "resp", "surgery"]
    missing = client.get("/Organization?type:in=http://x/vs/none")
    assert missing.status_code == 400


NUMBER_PARAM = {
    "resourceType": "SearchParameter", "id": "is-instances", "status": "active",
    "url": "http://alliance-fhir.org/fhir/SearchParameter/ImagingStudy-instances",
    "name": "instances", "code": "instances", "base": ["ImagingStudy"], "type": "number",
    "description": "Number of instances", "expression": "ImagingStudy.numberOfInstances"}


def study(sid: str, instances: int) -> dict:
    return {"resourceType": "ImagingStudy", "id": sid, "status": "available",
            "subject": {"reference": "Patient/p"}, "numberOfInstances": instances}


def test_stored_search_parameter_after_reindex(client, settings):
    client.put("/Patient/p", json={"resourceType": "Patient", "id": "p"})
    for sid, count in (("a", 100), ("b", 120), ("c", 1200)):
        client.put(f"/ImagingStudy/{sid}", json=study(sid, count))
    client.put("/SearchParameter/is-instances", json=NUMBER_PARAM)
    lenient = client.get("/ImagingStudy?instances=100").json()
    assert len(lenient["entry"]) == 3  # not known until $reindex: ignored
    reindexed = client.post("/$reindex")
    assert reindexed.status_code == 200
    assert reindexed.json()["parameter"][0]["valueInteger"] >= 5
    assert ids(client, "/ImagingStudy?instances=100") == ["a"]
    assert ids(client, "/ImagingStudy?instances=1e2") == ["a", "b"]
    assert ids(client, "/ImagingStudy?instances=gt100") == ["b", "c"]
    assert ids(client, "/ImagingStudy?instances=le120") == ["a", "b"]
    assert ids(client, "/ImagingStudy?instances=ne120") == ["a", "c"]
    assert ids(client, "/ImagingStudy?instances=ap1100") == ["c"]
    by_size = client.get("/ImagingStudy?_sort=-instances").json()["entry"]
    assert [e["resource"]["id"] for e in by_size] == ["c", "b", "a"]
    client.put("/ImagingStudy/d", json=study("d", 100))  # indexed on write from now on
    assert ids(client, "/ImagingStudy?instances=100") == ["a", "d"]


def test_reindex_command(tmp_path, capsys):
    db = tmp_path / "cli.db"
    assert main(["reindex", "--storage", f"sqlite:///{db}"]) == 0
    assert f"reindexed {PACKAGE_SIZE} resources" in capsys.readouterr().out


def test_an_older_database_is_reindexed_when_opened(settings):
    """Migration 5 (bare codes indexed with their binding's system) marks stored data for
    reindexing; the server rebuilds the index when it opens the database. Migration 6
    counts the stored token values."""
    with Client(build_app(settings)) as client:
        for pid, gender in (("p", "male"), ("q", "male"), ("r", "female")):
            client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                                "gender": gender})
    db = sqlite3.connect(settings.storage.removeprefix("sqlite:///"))
    with db:  # the database as schema 4 left it
        db.execute("UPDATE idx_token SET system = '' WHERE system = ?", (GENDER,))
        db.executescript("DROP TRIGGER idx_token_added; DROP TRIGGER idx_token_removed; "
                         "DROP TABLE token_counts; DROP INDEX resources_by_type; "
                         "DROP INDEX idx_quantity_rid; DROP INDEX idx_string_head; "
                         "DROP TABLE records; DROP TABLE audit_chain; DROP TABLE deferred_index; "
                         "DELETE FROM schema_version "
                         "WHERE version >= 5")
    db.close()
    with Client(build_app(settings)) as client:
        assert ids(client, f"/Patient?gender={GENDER}|male") == ["p", "q"]
        assert ids(client, "/Patient?gender=|male") == []
        total = client.get("/Patient?gender=male&_total=accurate&_count=1").json()["total"]
        assert total == 2
