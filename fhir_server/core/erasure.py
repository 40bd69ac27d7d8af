"""The AuditEvent that records an erasure (``$expunge``; PIPL art. 47, the right to
deletion). It names what was erased only by its type and id, in text: a reference would
point at nothing, and the erased content must not survive in the record."""

from __future__ import annotations

import datetime as dt

from fhir_server.types import Resource

SERVER = {"display": "alliance-fhir-server"}


def erasure_record(erased: list[tuple[str, str]]) -> Resource:
    """An AuditEvent: this server erased these resources (the first was asked for, the
    others referenced it and went with the cascade)."""
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "delete",
                     "display": "delete"}],
        "action": "D",
        "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "outcome": "0",
        "outcomeDesc": "$expunge: every version and index entry erased",
        "agent": [{"type": {"text": "server"}, "who": SERVER, "requestor": False}],
        "source": {"observer": SERVER},
        "entity": [{"what": {"display": f"{rtype}/{rid}"},
                    "description": "erased with every version" if n == 0
                    else "erased with every version: it referenced an erased resource"}
                   for n, (rtype, rid) in enumerate(erased)],
    }
