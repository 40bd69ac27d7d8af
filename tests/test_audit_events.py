"""The AuditEvents the server builds are valid R4 (they are stored without validation), and
the trail that stores them many per commit."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

import pytest

from fhir_server.app import build_service
from fhir_server.audit.events import export_event, token_event
from fhir_server.audit.trail import AuditTrail
from fhir_server.config import Settings
from fhir_server.core.erasure import erasure_record
from fhir_server.outcome import has_errors


@pytest.mark.parametrize("event", [
    token_event("wjw", True, "issued", "127.0.0.1"),
    token_event("", False, "refused"),
    export_event("wjw", "E", "started", "job1", "10.0.0.1", "cohort"),
    export_event("", "R", "downloaded", "job1"),
    erasure_record([("Patient", "p"), ("Observation", "o")]),
])
def test_built_audit_events_are_valid(event, tmp_path):
    service = build_service(Settings(storage=f"sqlite:///{tmp_path / 'a.db'}"))
    issues = service.check({**event, "id": "x"}, "AuditEvent")
    assert not has_errors(issues), issues


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
