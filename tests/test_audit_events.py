"""The AuditEvents the server builds are valid R4 (they are stored without validation)."""

from __future__ import annotations

import pytest

from fhir_server.app import build_service
from fhir_server.audit.events import export_event, token_event
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
