"""Monthly two-way referral KPIs (双向转诊考核) of each alliance member, as MeasureReports.

Rules (issue 17, DOMAIN.md): a referral (AllianceReferral ServiceRequest + its Task) counts
in the month of its ``ServiceRequest.authoredOn``; it is sent by the requester's
organisation (a PractitionerRole's ``organization``) and received by the Task owner's,
departments counting for their member hospital (``partOf``); cancelled referrals do not
count. The acceptance time runs from ``authoredOn`` to the Task version that set it
accepted (its ``referral-accepted`` time, see core/referral_flow.py). Members are the
organisations of the alliance's OrganizationAffiliations (the lead and its participants),
or, without any, every organisation that is no department. The grade (优良中差) comes from
the bands of the stored Measure ``referral-kpis``, which the alliance office edits.

Everything is read from the search index (``Storage.facts``): the month's referrals as
(id, requester, authoredOn) per direction, their Tasks as (focus, owner, accepted time),
the ids of cancelled and rejected ones, and the links of roles and organisations; the only
resources loaded are the members (their tier) and the Measure.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.core.referral_tier import organization_tier
from fhir_server.core.service import FhirService
from fhir_server.search.plan import Chain, Cmp, IndexMatch, Node, Query
from fhir_server.storage.port import Fact
from fhir_server.types import Resource

BASE = "http://alliance-fhir.org/fhir"
KPI = f"{BASE}/CodeSystem/referral-kpi"
MEASURE = f"{BASE}/Measure/referral-kpis"
MEASURE_ID = "referral-kpis"
GRADE_SYSTEM = f"{BASE}/CodeSystem/referral-grade"
GRADE_EXTENSION = f"{BASE}/StructureDefinition/referral-grade"
BAND = f"{BASE}/StructureDefinition/referral-grade-band"
GRADED = f"{BASE}/StructureDefinition/referral-graded-kpi"
NAMES = {"up-sent": "上转人次（转出）", "up-received": "上转人次（接收）",
         "down-sent": "下转人次（转出）", "down-received": "下转人次（接收）",
         "down-up-ratio": "下转上转比", "green-channel": "绿色通道转诊人次",
         "accept-median-minutes": "接受时间中位数（分钟）", "rejection-rate": "拒收率",
         "grade": "考核等级"}
PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
GREEN = "stat,asap"
MAX_PART_OF = 8


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in the server's zone."""

    label: str
    first: dt.date
    last: dt.date
    start_ms: int
    end_ms: int  # exclusive

    @classmethod
    def parse(cls, value: str | None, zone: dt.tzinfo) -> Month:
        found = PERIOD.fullmatch(value or "")
        if found is None:
            raise FhirError(f"period must be a month as YYYY-MM, got {value!r} "
                            "/ period 应为 YYYY-MM 格式的月份", "period")
        year, month = int(found[1]), int(found[2])
        first = dt.date(year, month, 1)
        following = dt.date(year + month // 12, month % 12 + 1, 1)

        def ms(day: dt.date) -> int:
            return int(dt.datetime.combine(day, dt.time(), zone).timestamp() * 1000)
        return cls(found[0], first, following - dt.timedelta(days=1), ms(first), ms(following))


@dataclass(frozen=True, slots=True)
class Referral:
    """One referral of the month, as the KPIs see it."""

    direction: str
    sender: str | None  # member "Organization/id"
    receiver: str | None
    green: bool
    authored_ms: int
    accepted_ms: int | None
    rejected: bool


@dataclass(frozen=True, slots=True)
class Band:
    code: str
    display: str
    minimum: float


class ReferralKpis:
    """Computes the KPIs of a month over the service's storage (no request gate: the
    figures are counts, and the alliance office reads them all)."""

    def __init__(self, service: FhirService) -> None:
        self.service = service
        self.keys = service.search_registry

    def _key(self, rtype: str, code: str) -> str:
        param = self.keys.get(rtype, code)
        if param is None:
            raise FhirError(f"The search parameter {rtype}.{code} the KPIs need is unknown")
        return param.key

    def _parsed(self, rtype: str, *pairs: tuple[str, str]) -> tuple[Node, ...]:
        """The plan criteria of search parameters (one definition per parameter)."""
        return self.service.searcher.parse((rtype,), list(pairs), strict=True).query.where

    async def _facts(self, rtype: str, where: tuple[Node, ...],
                     wanted: Iterable[tuple[str, str]] = ()) -> list[tuple[Any, ...]]:
        return await self.service.storage.facts(
            Query((rtype,), where), [Fact(table, self._key(rtype, code))  # type: ignore[arg-type]
                                     for table, code in wanted])

    async def reports(self, period: str | None, member: str | None = None) -> list[Resource]:
        """The MeasureReports of the month: of every member, or of ``member`` only."""
        month = Month.parse(period, self.service.settings.zone)
        members = await self._members()
        if member is not None and member not in members:
            members.append(member)  # an organisation outside the affiliations: its own figures
        hospital = await self._hospitals(members)
        referrals = await self._referrals(month, hospital)
        bands, graded = await self._grading()
        wanted = [member] if member is not None else members
        grassroots = {m: await self._grassroots(m) for m in wanted}
        now = dt.datetime.now(self.service.settings.zone).isoformat(timespec="seconds")
        sent: dict[str | None, list[Referral]] = defaultdict(list)
        received: dict[str | None, list[Referral]] = defaultdict(list)
        for referral in referrals:
            sent[referral.sender].append(referral)
            received[referral.receiver].append(referral)
        return [self._report(m, month, sent[m], received[m], grassroots[m], bands, graded,
                             now) for m in wanted]

    # -- the alliance's shape ------------------------------------------------------------

    async def _members(self) -> list[str]:
        found = await self._facts("OrganizationAffiliation", self._parsed(
            "OrganizationAffiliation", ("active", "true")), [
            ("reference", "primary-organization"), ("reference", "participating-organization")])
        members: list[str] = []
        for _, lead, participant in sorted(found, key=lambda row: str(row[0])):
            for organization in (lead, participant):
                if organization and organization not in members:
                    members.append(organization)
        if not members:
            tops = await self._facts("Organization", self._parsed(
                "Organization", ("partof:missing", "true")))
            members = sorted(f"Organization/{row[0]}" for row in tops)
        leads = {row[1] for row in found}
        return sorted(members, key=lambda m: (m not in leads, m))

    async def _hospitals(self, members: list[str]) -> dict[str, str]:
        """Each organisation and role -> the member it counts for."""
        parents = {f"Organization/{id}": parent for id, parent in await self._facts(
            "Organization", (), [("reference", "partof")])}
        inside = set(members)
        counted: dict[str, str] = {}
        for organization in parents:
            step: str | None = organization
            for _ in range(MAX_PART_OF):
                if step is None or step in inside or parents.get(step) is None:
                    break
                step = parents.get(step)
            counted[organization] = step or organization
        for id, organization in await self._facts("PractitionerRole", (), [
                ("reference", "organization")]):
            if organization:
                counted[f"PractitionerRole/{id}"] = counted.get(organization, organization)
        return counted

    async def _grassroots(self, member: str) -> bool:
        """Whether a member is grassroots (tier 1: township, community, village)."""
        async def resolve(reference: str) -> Resource | None:
            rtype, _, id = reference.partition("/")
            found = await self.service.storage.read(rtype, id)
            return None if found is None or found.deleted else jsonbytes.loads(found.content)
        organization = await resolve(member)
        return organization is not None and await organization_tier(organization, resolve) == 1

    async def _grading(self) -> tuple[list[Band], str]:
        """The grade bands (highest first) and the graded figure, from the stored Measure
        (the package's when none is stored)."""
        stored = await self.service.storage.read("Measure", MEASURE_ID)
        measure = jsonbytes.loads(stored.content) if stored and not stored.deleted else next(
            (m for m in self.service.package.of_type("Measure") if m.get("url") == MEASURE),
            {})
        bands, graded = [], "down-up-ratio"
        for extension in measure.get("extension") or ():
            if extension.get("url") == GRADED and extension.get("valueCode") in NAMES:
                graded = extension["valueCode"]
            if extension.get("url") != BAND:
                continue
            parts = {e.get("url"): e for e in extension.get("extension") or ()}
            coding = (parts.get("grade") or {}).get("valueCoding") or {}
            minimum = (parts.get("minimum") or {}).get("valueDecimal")
            if coding.get("code") and isinstance(minimum, int | float):
                bands.append(Band(coding["code"], coding.get("display") or coding["code"],
                                  float(minimum)))
        return sorted(bands, key=lambda b: -b.minimum), graded

    # -- the month's referrals -----------------------------------------------------------

    async def _referrals(self, month: Month, counted: dict[str, str]) -> list[Referral]:
        """The month's referrals: ServiceRequests whose ``authoredOn`` starts in the month
        (a range on its sort rows, exact and index-driven), and their Tasks (a chain)."""
        authored = self._key("ServiceRequest", "authored")
        in_month: Node = IndexMatch("sort", authored, (
            (Cmp("value", ">=", month.start_ms), Cmp("value", "<", month.end_ms)),))
        chain = Chain(self._key("Task", "focus"), "ServiceRequest", (in_month,))
        tasks = {focus: (owner, accepted) for _, focus, owner, accepted in await self._facts(
            "Task", (chain,), [("reference", "focus"), ("reference", "owner"),
                               ("sort", "accepted")]) if focus}
        cancelled = await self._task_foci(chain, "cancelled")
        rejected = await self._task_foci(chain, "rejected")
        up = await self._ids("ServiceRequest", in_month, ("direction", "up"))
        down = await self._ids("ServiceRequest", in_month, ("direction", "down"))
        green = await self._ids("ServiceRequest", in_month, ("priority", GREEN))
        void = await self._ids("ServiceRequest", in_month, ("status", "entered-in-error"))
        referrals = []
        for id, requester, start in await self._facts("ServiceRequest", (in_month,), [
                ("reference", "requester"), ("sort", "authored")]):
            reference = f"ServiceRequest/{id}"
            direction = "up" if id in up else "down" if id in down else None
            if direction is None or id in void or reference in cancelled:
                continue
            owner, accepted = tasks.get(reference, (None, None))
            referrals.append(Referral(
                direction, counted.get(requester, requester) if requester else None,
                counted.get(owner, owner) if owner else None, id in green, int(start),
                int(accepted) if accepted is not None else None, reference in rejected))
        return referrals

    async def _ids(self, rtype: str, node: Node, pair: tuple[str, str]) -> set[str]:
        """The ids of ``rtype`` meeting ``node`` and one search parameter."""
        return {row[0] for row in await self._facts(rtype, (node, *self._parsed(rtype, pair)))}

    async def _task_foci(self, chain: Node, status: str) -> set[str]:
        return {focus for _, focus in await self._facts(
            "Task", (chain, *self._parsed("Task", ("status", status))),
            [("reference", "focus")]) if focus}

    # -- the report ----------------------------------------------------------------------

    def _report(self, member: str, month: Month, sent_by: list[Referral],
                received: list[Referral], grassroots: bool, bands: list[Band], graded: str,
                now: str) -> Resource:
        """One member's MeasureReport from the referrals it sent and received."""
        sent = Counter(r.direction for r in sent_by)
        got = Counter(r.direction for r in received)
        numerator, denominator = (got["down"], sent["up"]) if grassroots else \
            (sent["down"], got["up"])
        waits = [(r.accepted_ms - r.authored_ms) / 60_000 for r in received
                 if r.accepted_ms is not None]
        figures: dict[str, float | None] = {
            "up-sent": sent["up"], "up-received": got["up"],
            "down-sent": sent["down"], "down-received": got["down"],
            "down-up-ratio": round(numerator / denominator, 4) if denominator else None,
            "green-channel": sum(r.green for r in sent_by)
            + sum(r.green for r in received if r.sender != member),
            "accept-median-minutes": round(statistics.median(waits), 1) if waits else None,
            "rejection-rate": round(sum(r.rejected for r in received) / len(received), 4)
            if received else None,
        }
        groups = [_group(code, value) for code, value in figures.items()]
        for group, direction in ((groups[0], "up"), (groups[2], "down")):
            flows = Counter(r.receiver for r in sent_by
                            if r.direction == direction and r.receiver)
            if flows:  # where the member's referrals went (the dashboard's Sankey)
                group["stratifier"] = [{"code": [{"text": "receiver"}], "stratum": [
                    {"value": {"text": receiver}, "measureScore": {"value": count}}
                    for receiver, count in sorted(flows.items())]}]
        groups.append(_grade(figures.get(graded), bands))
        return {"resourceType": "MeasureReport", "status": "complete", "type": "summary",
                "measure": MEASURE, "subject": {"reference": member},
                "date": now, "reporter": {"reference": member},
                "period": {"start": month.first.isoformat(), "end": month.last.isoformat()},
                "group": groups}


def _code(code: str) -> Resource:
    return {"coding": [{"system": KPI, "code": code, "display": NAMES[code]}]}


def _group(code: str, value: float | None) -> Resource:
    group: Resource = {"code": _code(code)}
    if value is not None:
        group["measureScore"] = {"value": value}
        if code == "accept-median-minutes":
            group["measureScore"].update(unit="min", system="http://unitsofmeasure.org",
                                         code="min")
    return group


def _grade(score: float | None, bands: list[Band]) -> Resource:
    """The grade group: the highest band the score reaches, its rank (4 = the best of four
    bands) as the measureScore and the grade as an extension; none without a score."""
    group: Resource = {"code": _code("grade")}
    for rank, band in enumerate(bands):
        if score is not None and score >= band.minimum:
            group["extension"] = [{"url": GRADE_EXTENSION, "valueCoding": {
                "system": GRADE_SYSTEM, "code": band.code, "display": band.display}}]
            group["measureScore"] = {"value": len(bands) - rank, "unit": band.display}
            break
    return group


def collection(reports: list[Resource]) -> Resource:
    """The system-level answer: a Bundle of type collection."""
    return {"resourceType": "Bundle", "type": "collection",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in reports]}
