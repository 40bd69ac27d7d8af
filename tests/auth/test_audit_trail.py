"""With auth on, every access has its AuditEvent, chained by SHA-256: the chain verifies,
a tampered row is found, a purge keeps it verifiable, an export writes a time range, and
kill -9 under load loses no audit record of an answered request."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest
from server_process import ServerProcess
from support import Client

from fhir_server.app import build_app
from fhir_server.cli import main
from fhir_server.config import Settings

ADMIN = "http://alliance-fhir.org/fhir/CodeSystem/admin-role"
TIER = "http://alliance-fhir.org/fhir/StructureDefinition/access-tier"
PEOPLE = [
    {"resourceType": "Organization", "id": "hosp", "name": "牵头医院"},
    {"resourceType": "PractitionerRole", "id": "doc", "organization": {
        "reference": "Organization/hosp"}, "extension": [{"url": TIER, "valueCode": "alliance"}]},
    {"resourceType": "PractitionerRole", "id": "auditor", "organization": {
        "reference": "Organization/hosp"}, "code": [{"coding": [
            {"system": ADMIN, "code": "audit-admin"}]}]},
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "李"}]},
]


def _load(storage: str, folder: Path) -> None:
    path = folder / "people.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in PEOPLE))
    assert main(["load", str(path), "--storage", storage, "--quiet"]) == 0


def _token(storage: str, user: str, capsys: pytest.CaptureFixture[str],
           scope: str = "user/*.cruds") -> dict[str, str]:
    assert main(["token", "--user", f"PractitionerRole/{user}", "--scope", scope,
                 "--storage", storage]) == 0
    return {"authorization": f"Bearer {capsys.readouterr().out.split()[-1]}"}


@pytest.fixture
def audited(settings: Settings, tmp_path: Path) -> Iterator[tuple[Client, Settings]]:
    _load(settings.storage, tmp_path)
    secured = replace(settings, auth="smart", dev_tokens=True)
    with Client(build_app(secured)) as client:
        yield client, secured


def _events(client: Client, auditor: dict[str, str]) -> list[dict]:
    bundle = client.get("/AuditEvent?_count=1000&_sort=date", headers=auditor).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_every_request_has_its_audit_event(audited, capsys):
    client, settings = audited
    doc, auditor = _token(settings.storage, "doc", capsys), \
        _token(settings.storage, "auditor", capsys)
    reader = _token(settings.storage, "doc", capsys, "user/Patient.rs")
    assert client.get("/Patient/p1", headers=doc).status_code == 200
    assert client.get("/Patient?name=李", headers=doc).status_code == 200
    created = client.post("/Observation", headers=doc, json={
        "resourceType": "Observation", "status": "final", "code": {"text": "血压"},
        "subject": {"reference": "Patient/p1"}})
    assert created.status_code == 201
    oid = created.json()["id"]
    assert client.put(f"/Observation/{oid}", headers=doc, json={
        **created.json(), "status": "amended"}).status_code == 200
    assert client.get(f"/Observation/{oid}", headers=doc).status_code == 200
    assert client.delete(f"/Observation/{oid}", headers=doc).status_code == 204
    assert client.get("/Observation", headers=reader).status_code == 403
    assert client.get("/Patient/p1", headers={"authorization": "Bearer x"}).status_code == 401
    events = _events(client, auditor)
    by_what = {" ".join(e["outcomeDesc"].split(" ", 2)[:2]): e for e in reversed(events)
               if e["outcome"] == "0"}
    read = by_what["GET /Patient/p1"]
    assert read["subtype"][0]["code"] == "read" and read["action"] == "R"
    assert read["agent"][0]["who"]["reference"] == "PractitionerRole/doc"
    assert read["entity"][0]["what"]["reference"] == "Patient/p1"
    assert read["entity"][0]["role"]["code"] == "1"  # the patient
    search = by_what["GET /Patient"]
    assert search["subtype"][0]["code"] == "search-type"
    assert search["entity"][0]["query"] and search["entity"][1]["what"]["reference"] \
        == "Patient/p1"
    for method, code, action in (("POST", "create", "C"), ("PUT", "update", "U"),
                                 ("DELETE", "delete", "D")):
        [event] = [e for e in events if e["outcomeDesc"].startswith(method + " /Observation")]
        assert (event["subtype"][0]["code"], event["action"], event["outcome"]) \
            == (code, action, "0")
        assert event["entity"][0]["what"]["reference"] == f"Observation/{oid}"
    observation = by_what[f"GET /Observation/{oid}"]  # with the patient it is about
    assert [e["what"]["reference"] for e in observation["entity"]] \
        == [f"Observation/{oid}", "Patient/p1"]
    [refused] = [e for e in events if e["outcomeDesc"].startswith("GET /Observation ")]
    assert refused["outcome"] == "4" and "403" in refused["outcomeDesc"]
    assert any(e["outcome"] == "4" and "401" in e["outcomeDesc"] for e in events)
    sequences = [next(x["valueInteger"] for x in e["extension"]
                      if x["url"].endswith("audit-sequence")) for e in events]
    assert sorted(sequences) == list(range(min(sequences), max(sequences) + 1))


@pytest.mark.sqlite_only("reads the deferred index rows with sqlite3")
def test_events_are_indexed_for_search_in_a_quiet_moment(audited, capsys):
    client, settings = audited
    doc = _token(settings.storage, "doc", capsys)
    assert client.get("/Patient/p1", headers=doc).status_code == 200
    db = sqlite3.connect(settings.storage.removeprefix("sqlite:///"))
    deadline = time.monotonic() + 30
    while db.execute("SELECT count(*) FROM deferred_index").fetchone()[0]:
        assert time.monotonic() < deadline, "the events were not indexed while quiet"
        client.runner.run(asyncio.sleep(0.05))  # (the app's loop runs only in this client)
    indexed = db.execute("SELECT count(*) FROM idx_reference f JOIN resources r ON "
                         "r.rid = f.rid WHERE r.type = 'AuditEvent'").fetchone()[0]
    db.close()
    assert indexed > 0


@pytest.mark.sqlite_only("tampers with a row through sqlite3")
def test_the_chain_verifies_and_a_tampered_row_is_found(audited, capsys):
    client, settings = audited
    doc = _token(settings.storage, "doc", capsys)
    for _ in range(5):
        client.get("/Patient/p1", headers=doc)
    assert main(["audit", "verify", "--storage", settings.storage]) == 0
    assert "audit chain verified: " in capsys.readouterr().out
    db = sqlite3.connect(settings.storage.removeprefix("sqlite:///"))
    seq = db.execute("SELECT c.seq FROM audit_chain c ORDER BY seq LIMIT 1 OFFSET 2"
                     ).fetchone()[0]
    db.execute("UPDATE history SET content = replace(content, 'GET /Patient', 'GET /Pxtient') "
               "WHERE type = 'AuditEvent' AND id = (SELECT id FROM audit_chain WHERE seq = ?)",
               (seq,))
    db.commit()
    db.close()
    assert main(["audit", "verify", "--storage", settings.storage]) == 1
    assert f"link {seq} " in capsys.readouterr().out


def test_purge_keeps_the_chain_verifiable_and_export_writes_ndjson(audited, capsys, tmp_path):
    client, settings = audited
    doc = _token(settings.storage, "doc", capsys)
    for _ in range(3):
        client.get("/Patient/p1", headers=doc)
    out = tmp_path / "audit.ndjson"
    assert main(["audit", "export", "--from", "2020-01-01", "--out", str(out),
                 "--storage", settings.storage]) == 0
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(exported) >= 3 and {e["resourceType"] for e in exported} == {"AuditEvent"}
    assert main(["audit", "purge", "--days", "-1", "--storage", settings.storage]) == 0
    assert f"removed {len(exported)}" in capsys.readouterr().out
    for _ in range(2):
        client.get("/Patient/p1", headers=doc)
    assert main(["audit", "verify", "--storage", settings.storage]) == 0
    assert "audit chain verified: 3 links" in capsys.readouterr().out  # purge record + 2


def test_audit_events_are_never_written_through_the_api(audited, capsys):
    client, settings = audited
    doc = _token(settings.storage, "doc", capsys)
    made = client.post("/AuditEvent", headers=doc, json={
        "resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}})
    assert made.status_code == 403
    events = _events(client, _token(settings.storage, "auditor", capsys))
    assert client.post(f"/AuditEvent/{events[0]['id']}/$expunge", headers=doc
                       ).status_code in (403, 404)


def test_kill_9_under_read_load_loses_no_answered_audit_record(tmp_path, capsys):
    db = tmp_path / "audit.db"
    _load(f"sqlite:///{db}", tmp_path)
    headers = _token(f"sqlite:///{db}", "doc", capsys)
    server = ServerProcess(db, "--auth", "smart", env={"FHIR_DEV_TOKENS": "true"})
    answered: list[int] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                try:
                    if http.get(f"{server.base}/Patient/p1", headers=headers
                                ).status_code == 200:
                        answered.append(1)
                except httpx.TransportError:
                    return
    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(answered) > 20
    stored = sqlite3.connect(db).execute(
        "SELECT count(*) FROM history WHERE type = 'AuditEvent' AND "
        "CAST(content AS TEXT) LIKE '%GET /Patient/p1 200%'").fetchone()[0]
    assert stored >= len(answered)
