"""AuditEvent resources (https://hl7.org/fhir/R4/auditevent.html), coded as in the spec's
examples (DICOM / IHE ATNA event types). A backend client is named by its id in
``agent.who.identifier``, ``agent.altId`` and ``agent.name`` (it is not a resource), so
``AuditEvent?altid=CLIENT`` or ``?agent-name=CLIENT`` finds its events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_server.types import Resource

DCM = "http://dicom.nema.org/resources/ontology/DCM"
CLIENT_SYSTEM = "urn:ietf:params:oauth:client-id"
EXPORT_JOB_SYSTEM = "urn:alliance-fhir:export-job"
SERVER = {"display": "alliance-fhir-server"}
AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
LOGIN = {"system": DCM, "code": "110122", "display": "Login"}
EXPORT = {"system": DCM, "code": "110106", "display": "Export"}
REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
        "display": "RESTful Operation"}
SUCCESS, MINOR_FAILURE = "0", "4"
BTG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG",
       "display": "break the glass"}


def audit_event(kind: dict[str, str], action: str, outcome: str, description: str,
                agents: list[dict[str, Any]], entities: list[dict[str, Any]] | None = None,
                subtype: dict[str, str] | None = None) -> Resource:
    """One AuditEvent, recorded now, observed by this server."""
    return {
        "resourceType": "AuditEvent",
        "type": kind,
        **({"subtype": [subtype]} if subtype else {}),
        "action": action,
        "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "outcome": outcome,
        "outcomeDesc": description,
        "agent": agents,
        "source": {"observer": SERVER},
        **({"entity": entities} if entities else {}),
    }


def client_agent(client_id: str, address: str = "") -> dict[str, Any]:
    """A backend client as the requesting agent."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                             "extra-security-role-type", "code": "datacollector",
                             "display": "data collector"}]},
        "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client_id or "unknown"},
                "display": client_id or "unknown"},
        "altId": client_id or "unknown",
        "name": client_id or "unknown",
        "requestor": True,
    }
    if address:
        agent["network"] = {"address": address, "type": "2"}  # 2: IP address
    return agent


def server_agent() -> dict[str, Any]:
    return {"type": {"text": "server"}, "who": SERVER, "requestor": False}


def token_event(client_id: str, granted: bool, description: str,
                address: str = "") -> Resource:
    """A token was issued to a client, or refused."""
    return audit_event(AUTHENTICATION, "E", SUCCESS if granted else MINOR_FAILURE,
                       description, [client_agent(client_id, address), server_agent()],
                       subtype=LOGIN)


def export_event(client_id: str, action: str, description: str, job_id: str,
                 address: str = "", group: str | None = None) -> Resource:
    """A bulk export was started (``E``), a file of it downloaded (``R``), or it was
    cancelled (``D``): the job by its id, and the Group exported, if any."""
    entities: list[dict[str, Any]] = [{
        "what": {"identifier": {"system": EXPORT_JOB_SYSTEM, "value": job_id}},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                 "code": "2", "display": "System Object"},
        "name": job_id}]
    if group is not None:
        entities.append({"what": {"reference": f"Group/{group}"},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                  "audit-entity-type", "code": "2"}})
    return audit_event(EXPORT, action, SUCCESS, description,
                       [client_agent(client_id, address), server_agent()], entities)


def user_agent(user: str, client_id: str, address: str = "") -> dict[str, Any]:
    """A user (their PractitionerRole or Practitioner) as the requesting agent."""
    agent: dict[str, Any] = {"who": {"reference": user}, "altId": client_id or user,
                             "requestor": True}
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def break_glass_event(user: str, client_id: str, reason: str, what: str,
                      address: str = "") -> Resource:
    """A clinician opened the alliance tier for one request (purposeOfUse BTG)."""
    event = audit_event(REST, "E", SUCCESS, f"break-glass: {reason} ({what})",
                        [user_agent(user, client_id, address), server_agent()])
    event["purposeOfEvent"] = [{"coding": [BTG], "text": reason}]
    event["agent"][0]["purposeOfUse"] = [{"coding": [BTG], "text": reason}]
    return event
