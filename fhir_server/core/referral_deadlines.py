"""The green channel's (绿色通道) deadlines: a referral of priority stat or asap must be
accepted within its deadline (``FHIR_REFERRAL_SLA``, default stat 30 minutes, asap 4
hours, from the ServiceRequest's ``authoredOn``); one that is not gets
``Task.businessStatus`` = ``overdue`` (CodeSystem ``referral-business-status``): a new
version the server writes, with a Provenance naming the server as its agent, in one
commit. Subscriptions on Task see it as any other write.

Every worker sweeps now and then (``Periodic``); a sweep finds the candidates on the index
(open Tasks of those priorities not yet overdue), reads only them, and holds each write to
the version it read, so two workers sweeping at once write one version. The clock is a
parameter: tests move it instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from fhir_server import jsonbytes
from fhir_server.core.errors import Conflict, FhirError, PreconditionFailed
from fhir_server.core.service import FhirService
from fhir_server.core.versioning import format_instant
from fhir_server.storage.port import Fact
from fhir_server.types import Resource

BASE = "http://alliance-fhir.org/fhir"
STATUS_SYSTEM = f"{BASE}/CodeSystem/referral-business-status"
OVERDUE = {"coding": [{"system": STATUS_SYSTEM, "code": "overdue", "display": "超时未接受"}],
           "text": "超时未接受 / not accepted within its deadline"}
WAITING = "requested,received"  # not accepted yet
SERVER = {"display": "alliance-fhir-server", "identifier": {
    "system": f"{BASE}/sid/software", "value": "alliance-fhir-server"}}
Clock = Callable[[], float]  # seconds since the epoch
log = logging.getLogger("fhir_server")


class OverdueSweep:
    """Marks green-channel referrals whose acceptance deadline passed."""

    def __init__(self, service: FhirService, clock: Clock = time.time) -> None:
        self.service, self.clock = service, clock
        self.deadlines = service.settings.referral_deadlines

    async def sweep(self) -> list[str]:
        """One sweep; the ids of the Tasks it marked overdue."""
        if not self.deadlines:
            return []
        now_ms = int(self.clock() * 1000)
        registry = self.service.search_registry
        query = self.service.searcher.parse(("Task",), [
            ("status", WAITING), ("priority", ",".join(self.deadlines)),
            ("business-status:not", f"{STATUS_SYSTEM}|overdue")], strict=True).query
        focus = registry.get("Task", "focus")
        authored = registry.get("ServiceRequest", "authored")
        if focus is None or authored is None:
            return []
        candidates = await self.service.storage.facts(query, [Fact("reference", focus.key)])
        marked = []
        for task_id, referral in candidates:
            if not isinstance(referral, str) or not referral.startswith("ServiceRequest/"):
                continue
            if await self._mark(task_id, referral, now_ms):
                marked.append(task_id)
        return marked

    async def _mark(self, task_id: str, referral: str, now_ms: int) -> bool:
        stored = await self.service.storage.read("Task", task_id)
        request = await self.service.storage.read("ServiceRequest",
                                                  referral.removeprefix("ServiceRequest/"))
        if stored is None or stored.deleted or request is None or request.deleted:
            return False
        task: Resource = jsonbytes.loads(stored.content)
        authored = _instant_ms(jsonbytes.loads(request.content).get("authoredOn"),
                               self.service.settings.zone)
        allowed = self.deadlines.get(str(task.get("priority")))
        if authored is None or allowed is None or now_ms < authored + allowed * 1000:
            return False
        task.pop("meta", None)
        task["businessStatus"] = OVERDUE
        provenance = {
            "resourceType": "Provenance",
            "target": [{"reference": f"Task/{task_id}/_history/{stored.version + 1}"}],
            "recorded": format_instant(now_ms),
            "activity": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                "code": "UPDATE"}]},
            "reason": [{"text": "绿色通道转诊超时未接受 / a green-channel referral was not "
                                "accepted within its deadline (FHIR_REFERRAL_SLA)"}],
            "agent": [{"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "performer"}]}, "who": SERVER}]}
        try:
            await self.service.commit([
                self.service.prepare_update("Task", task_id, task, stored.version),
                self.service.prepare_create("Provenance", provenance)], gated=False)
        except (PreconditionFailed, Conflict):
            return False  # changed meanwhile (accepted, or another worker marked it)
        except FhirError as error:  # (a Task stored before a rule it now breaks)
            log.warning("Task/%s could not be marked overdue: %s", task_id, error)
            return False
        return True


def _instant_ms(value: object, zone: dt.tzinfo) -> int | None:
    """The start of a FHIR date or dateTime, in epoch milliseconds (``zone`` when it has
    none)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) <= 10:
            parts = [int(p) for p in text.split("-")] + [1, 1]
            moment = dt.datetime(parts[0], parts[1], parts[2], tzinfo=zone)
        else:
            moment = dt.datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)
