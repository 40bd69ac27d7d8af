"""The AuditEvent of one request (等保 2.0: an audit trail of every access): who (the
user's PractitionerRole or the backend client, the client id, the network address), what
interaction, on which resources (and the query of a search), the outcome, and the purpose
of use (BTG for break-glass). A request that writes has its event committed with its
writes (``core.gate.WriteAudit``); any other is recorded before its answer is sent.
Coded as https://hl7.org/fhir/R4/auditevent.html (type ``rest``, subtype a
``restful-interaction`` code).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from fhir_server.audit.events import (
    BTG,
    MINOR_FAILURE,
    REST,
    SUCCESS,
    audit_event,
    client_agent,
    server_agent,
    user_agent,
)
from fhir_server.auth.scopes import Grant
from fhir_server.rest.request import FhirRequest
from fhir_server.types import Resource

INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SERIOUS_FAILURE = "8"
RESTFUL = frozenset({"read", "vread", "update", "patch", "delete", "history-instance",
                     "history-type", "history-system", "create", "search-type",
                     "search-system", "capabilities", "transaction", "batch"})
ACTIONS = {"create": "C", "update": "U", "patch": "U", "delete": "D"}
READS = frozenset({"read", "vread", "history-instance", "history-type", "history-system",
                   "search-type", "search-system", "search-compartment", "capabilities",
                   "terminology"})
SELF_AUDITED = frozenset({"export", "export-status", "export-file"})  # (their own events)


PATIENT_REFERENCE = re.compile(rb'"reference":"(Patient/[A-Za-z0-9\-.]{1,64})"')


def touch(request: FhirRequest, reference: str, content: bytes) -> None:
    """Note a resource the request read or found, and the patients it names (for the
    audit's entities; a scan of the stored bytes, no parse)."""
    request.touched.append(reference)
    if not reference.startswith("Patient/"):
        request.touched += [m.decode() for m in PATIENT_REFERENCE.findall(content)]


class RequestAudit:
    """Builds the AuditEvent(s) of one request."""

    def __init__(self, request: FhirRequest) -> None:
        self.request = request
        self.committed = False  # its event went with a commit of its writes

    def written(self, writes: Sequence[tuple[str, str, str]]) -> Resource:
        """The event of the request's writes, committed with them."""
        self.committed = True
        actions = {ACTIONS.get(kind, "E") for kind, _, _ in writes}
        action = actions.pop() if len(actions) == 1 and self.request.interaction not in (
            "transaction", "batch") else "E"
        return self._event(action, SUCCESS, f"{self._what()} committed",
                           [_entity(f"{t}/{i}") for _, t, i in writes])

    def answered(self, status: int, diagnostics: str = "") -> Resource:
        """The event of a request answered without a commit of its own (a read, a search,
        a refusal, a failure)."""
        outcome = SUCCESS if status < 400 else MINOR_FAILURE if status < 500 \
            else SERIOUS_FAILURE
        action = ACTIONS.get(self.request.interaction, "R" if self.request.interaction
                             in READS else "E")
        entities = [_entity(r) for r in dict.fromkeys(self.request.touched)]
        if self.request.interaction.startswith("search") and self.request.query:
            query = "&".join(f"{k}={v}" for k, v in self.request.query)
            entities.insert(0, {"type": {"system": ENTITY_TYPE, "code": "2",
                                         "display": "System Object"},
                                "role": {"system": OBJECT_ROLE, "code": "24",
                                         "display": "Query"},
                                "query": base64.b64encode(query.encode()).decode()})
        text = f"{self._what()} {status}" + (f": {diagnostics}" if diagnostics else "")
        return self._event(action, outcome, text, entities)

    def _what(self) -> str:
        return f"{self.request.method} /{self.request.path}"

    def _event(self, action: str, outcome: str, text: str,
               entities: list[dict[str, Any]]) -> Resource:
        request, grant = self.request, self.request.grant
        if isinstance(grant, Grant) and grant.user:
            agent = user_agent(grant.user, grant.client_id, request.client)
        else:
            agent = client_agent(grant.client_id if isinstance(grant, Grant) else "",
                                 request.client)
        if request.header("x-purpose-of-use") == "BTG":
            reason = unquote(request.header("x-break-glass-reason") or "")
            agent["purposeOfUse"] = [{"coding": [BTG], "text": reason}]
        subtype = "search-type" if request.interaction == "search-compartment" \
            else request.interaction if request.interaction in RESTFUL else "operation"
        event = audit_event(REST, action, outcome, text, [agent, server_agent()], entities,
                            subtype={"system": INTERACTION, "code": subtype})
        if "purposeOfUse" in agent:
            event["purposeOfEvent"] = agent["purposeOfUse"]
        return event


def _entity(reference: str) -> dict[str, Any]:
    """A resource the request touched (a Patient in the role of patient)."""
    if reference.startswith("Patient/"):
        return {"what": {"reference": reference},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}
    return {"what": {"reference": reference},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}}
