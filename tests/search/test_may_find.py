"""Which searches may find the server's AuditEvents (those index them first, since the
server writes their index entries later): by type, include, chain or ``_has``."""

from __future__ import annotations

import pytest

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.core.search import may_find


@pytest.mark.parametrize(("types", "pairs", "expected"), [
    (("AuditEvent",), [], True),
    ((), [("_lastUpdated", "gt2020")], True),  # the whole system
    (("Patient",), [("_revinclude", "AuditEvent:patient")], True),
    (("Patient",), [("_has:AuditEvent:patient:outcome", "0")], True),
    (("Provenance",), [("entity:AuditEvent.outcome", "0")], True),
    (("Patient",), [("name", "王"), ("_include", "Patient:organization")], False),
    (("Observation",), [("subject:Patient.name", "李")], False),
])
def test_searches_that_may_find_audit_events(settings: Settings, types, pairs, expected):
    query = build_service(settings).searcher.parse(types, pairs, strict=True).query
    assert may_find(query, "AuditEvent") is expected
