"""The AuditEvent that records an erasure (``$expunge``; PIPL art. 47, the right to
deletion). It names what was erased only by its type and id, in text: a reference would
point at nothing, and the erased content must not survive in the record."""

from __future__ import annotations

from fhir_server.audit.events import REST, SUCCESS, audit_event, server_agent
from fhir_server.types import Resource

DELETE = {"system": "http://hl7.org/fhir/restful-interaction", "code": "delete",
          "display": "delete"}


def erasure_record(erased: list[tuple[str, str]]) -> Resource:
    """An AuditEvent: this server erased these resources (the first was asked for, the
    others referenced it and went with the cascade)."""
    return audit_event(
        REST, "D", SUCCESS, "$expunge: every version and index entry erased", [server_agent()],
        [{"what": {"display": f"{rtype}/{rid}"},
          "description": "erased with every version" if n == 0
          else "erased with every version: it referenced an erased resource"}
         for n, (rtype, rid) in enumerate(erased)], subtype=DELETE)
