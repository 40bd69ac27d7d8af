"""The AuditEvents the server builds are valid R4 (they are stored without validation), and
the trail that stores them many per commit."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

import pytest

from fhir_server.app import build_service
from fhir_server.audit.events import break_glass_event, export_event, token_event
from fhir_server.audit.trail import AuditTrail
from fhir_server.auth.scopes import Grant
from fhir_server.config import Settings
from fhir_server.core.erasure import erasure_record
from fhir_server.core.versioning import linked_renderer
from fhir_server.jsonbytes import loads
from fhir_server.outcome import has_errors
from fhir_server.rest.access_audit import RequestAudit, touch
from fhir_server.rest.request import FhirRequest


def _request_event() -> dict:
    request = FhirRequest("GET", "Observation", [("code", "8867-4")], {
        "x-purpose-of-use": "BTG", "x-break-glass-reason": "coma"}, client="10.1.2.3",
        interaction="search-type", grant=Grant("his", (), "user/*.rs", user="PractitionerRole/d"))
    touch(request, "Observation/o1", b'{"subject":{"reference":"Patient/p1"}}')
    return RequestAudit(request).answered(200)


@pytest.mark.parametrize("event", [
    token_event("wjw", True, "issued", "127.0.0.1"),
    token_event("", False, "refused"),
    export_event("wjw", "E", "started", "job1", "10.0.0.1", "cohort"),
    export_event("", "R", "downloaded", "job1"),
    erasure_record([("Patient", "p"), ("Observation", "o")]),
    break_glass_event("PractitionerRole/d", "his", "昏迷", "GET /Patient/p1", "10.0.0.2"),
    _request_event(),
])
def test_built_audit_events_are_valid(event, tmp_path):
    """As stored: with their links of the audit chain."""
    service = build_service(Settings(storage=f"sqlite:///{tmp_path / 'a.db'}"))
    stored = loads(linked_renderer({**event, "id": "x"})(1, 0, 7, "ab" * 32))
    issues = service.check(stored, "AuditEvent")
    assert not has_errors(issues), issues
    rows = service._record_rows({**event, "id": "x"})  # shared parts' rows, cached
    assert {t: sorted(r) for t, r in rows.items() if r} \
        == {t: sorted(r) for t, r in service.indexer.rows({**event, "id": "x"}).items()}


def test_a_recorder_that_gives_up_does_not_stop_the_trail(tmp_path):
    service = build_service(Settings(storage=f"sqlite:///{tmp_path / 'a.db'}"))

    async def record_some_cancel_one() -> None:
        await service.open()
        trail = AuditTrail(service)
        recorders = [asyncio.create_task(trail.record(token_event(f"c{n}", True, "issued")))
                     for n in range(6)]
        await asyncio.sleep(0)
        recorders[3].cancel()
        await asyncio.wait_for(asyncio.gather(*recorders, return_exceptions=True), 10)
        await asyncio.wait_for(trail.record(token_event("late", True, "issued")), 10)
        await service.close()

    asyncio.run(record_some_cancel_one())
    with closing(sqlite3.connect(tmp_path / "a.db")) as db:
        kept, = db.execute("SELECT count(*) FROM resources WHERE type = 'AuditEvent'").fetchone()
    assert kept >= 6  # the cancelled recorder's event may or may not have gone in
