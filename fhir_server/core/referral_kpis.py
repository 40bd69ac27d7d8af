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

The month's referrals are read from the referral ledger (core/referral_ledger.py: one row
per referral, kept by the commits, one range of records per month); the links of roles and
organisations from the search index (``Storage.facts``); the only resources loaded are the
members (their tier) and the Measure.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.core.referral_tier import organization_tier
from fhir_server.core.service import FhirService
from fhir_server.search.plan import Node, Query
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
MAX_PART_OF = 8


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month (its referrals: those authored in it, in the server's zone)."""

    label: str
    first: dt.date
    last: dt.date

    @classmethod
    def parse(cls, value: str | None) -> Month:
        found = PERIOD.fullmatch(value or "")
        if found is None:
            raise FhirError(f"period must be a month as YYYY-MM, got {value!r} "
                            "/ period 应为 YYYY-MM 格式的月份", "period")
        year, month = int(found[1]), int(found[2])
        first = dt.date(year, month, 1)
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return cls(found[0], first, following - dt.timedelta(days=1))


@dataclass(slots=True)
class Tally:
    """What one member sent and received in the month."""

    sent: Counter[str] = field(default_factory=Counter)  # direction -> referrals
    received: Counter[str] = field(default_factory=Counter)
    green: int = 0  # green-channel referrals it sent or received (once each)
    waits: list[float] = field(default_factory=list)  # minutes to accept what it received
    rejected: int = 0  # of those it received
    flows: dict[str, Counter[str]] = field(default_factory=lambda: {
        "up": Counter(), "down": Counter()})  # direction -> receiving member -> referrals


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
        month = Month.parse(period)
        members = await self._members()
        if member is not None and member not in members:
            members.append(member)  # an organisation outside the affiliations: its own figures
        tallies = await self._tallies(month, await self._hospitals(members))
        bands, graded = await self._grading()
        wanted = [member] if member is not None else members
        grassroots = {m: await self._grassroots(m) for m in wanted}
        now = dt.datetime.now(self.service.settings.zone).isoformat(timespec="seconds")
        return [self._report(m, month, tallies.get(m) or Tally(), grassroots[m], bands,
                             graded, now) for m in wanted]

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

    async def _tallies(self, month: Month, counted: dict[str, str]) -> dict[str, Tally]:
        """The month's referrals, from the referral ledger (core/referral_ledger.py), tallied
        for the members that sent and received them (one pass: 100 k rows)."""
        member = counted.get
        tallies: dict[str, Tally] = defaultdict(Tally)
        for direction, requester, owner, green, authored, accepted, rejected in \
                await self.service.ledger.month(month.label):
            sender = member(requester, requester) if requester else ""
            receiver = member(owner, owner) if owner else ""
            out, into = tallies[sender], tallies[receiver]
            out.sent[direction] += 1
            into.received[direction] += 1
            if receiver:
                out.flows[direction][receiver] += 1
            if green:
                out.green += 1
                into.green += receiver != sender
            if accepted is not None:
                into.waits.append((accepted - authored) / 60_000)
            into.rejected += rejected
        return tallies

    # -- the report ----------------------------------------------------------------------

    def _report(self, member: str, month: Month, tally: Tally, grassroots: bool,
                bands: list[Band], graded: str, now: str) -> Resource:
        """One member's MeasureReport from what it sent and received."""
        sent, got = tally.sent, tally.received
        numerator, denominator = (got["down"], sent["up"]) if grassroots else \
            (sent["down"], got["up"])
        received = got.total()
        figures: dict[str, float | None] = {
            "up-sent": sent["up"], "up-received": got["up"],
            "down-sent": sent["down"], "down-received": got["down"],
            "down-up-ratio": round(numerator / denominator, 4) if denominator else None,
            "green-channel": tally.green,
            "accept-median-minutes": round(statistics.median(tally.waits), 1)
            if tally.waits else None,
            "rejection-rate": round(tally.rejected / received, 4) if received else None,
        }
        groups = [_group(code, value) for code, value in figures.items()]
        for group, direction in ((groups[0], "up"), (groups[2], "down")):
            flows = tally.flows[direction]
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
