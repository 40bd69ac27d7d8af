"""$referral-kpis on a generated month of referrals, checked against counts this test makes
itself: every figure of every member, the grade from the Measure's bands (and an edit of
them), the month boundaries, the Bundle and the single-member answer, and bad periods."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import Client, storage_url

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.core.referral_ledger import BUILT, KIND
from fhir_server.storage.port import RecordChange, Storage

BASE = "http://alliance-fhir.org/fhir"
CS = f"{BASE}/CodeSystem"
LEVEL = f"{BASE}/StructureDefinition/hospital-level"
ACCEPTED = f"{BASE}/StructureDefinition/referral-accepted"
ZONE = dt.timezone(dt.timedelta(hours=8))
GRASSROOTS = ("town-a", "town-b")
HIGHER = ("lead", "county")


def _organization(id: str, level: str = "", part_of: str = "") -> dict:
    organization: dict = {"resourceType": "Organization", "id": id, "name": id}
    if level:
        organization["extension"] = [{"url": LEVEL, "valueCoding": {
            "system": f"{CS}/hospital-level", "code": level}}]
    else:
        organization["type"] = [{"coding": [{"system": f"{CS}/institution-type",
                                              "code": "C220"}]}]
    if part_of:
        organization["partOf"] = {"reference": f"Organization/{part_of}"}
        organization.pop("type", None)
    return organization


ALLIANCE = [
    _organization("lead", "3"), _organization("lead-heart", part_of="lead"),
    _organization("county", "2"), _organization("town-a"), _organization("town-b"),
    *({"resourceType": "PractitionerRole", "id": f"doc-{org}",
       "organization": {"reference": f"Organization/{org}"}}
      for org in ("lead-heart", "county", "town-a", "town-b")),
    *({"resourceType": "OrganizationAffiliation", "id": f"m-{org}", "active": True,
       "organization": {"reference": "Organization/lead"},
       "participatingOrganization": {"reference": f"Organization/{org}"}}
      for org in ("county", "town-a", "town-b")),
    {"resourceType": "Patient", "id": "p"},
]


@dataclass
class Made:
    """A generated referral and what it should count as."""

    id: str
    direction: str
    sender: str
    receiver: str
    green: bool
    authored: dt.datetime
    status: str
    accepted: dt.datetime | None


def _referral(number: int, rng: random.Random) -> Made:
    direction = rng.choice(("up", "down"))
    if direction == "up":
        sender = rng.choice((*GRASSROOTS, "county"))
        receiver = "lead" if sender == "county" else rng.choice(HIGHER)
    else:
        sender = rng.choice(HIGHER)
        receiver = rng.choice(GRASSROOTS)
    day = rng.choice([dt.date(2026, 10, 31), *[dt.date(2026, 11, d) for d in range(1, 31)],
                      dt.date(2026, 12, 1)])
    authored = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), ZONE)
    status = rng.choice(("requested", "received", "accepted", "in-progress", "completed",
                         "rejected", "cancelled"))
    accepted = authored + dt.timedelta(minutes=rng.randrange(5, 600)) \
        if status in ("accepted", "in-progress", "completed") else None
    return Made(f"k{number}", direction, sender, receiver, rng.random() < 0.3, authored,
                status, accepted)


PATHS = {"requested": (), "received": ("received",), "accepted": ("received", "accepted"),
         "in-progress": ("received", "accepted", "in-progress"),
         "completed": ("received", "accepted", "in-progress", "completed"),
         "rejected": ("received", "rejected"), "cancelled": ("cancelled",)}
MADE = [_referral(n, random.Random(17 + n)) for n in range(48)]


def _write(client: Client, made: Made) -> None:
    requester = "lead-heart" if made.sender == "lead" else made.sender
    referral = {
        "resourceType": "ServiceRequest", "id": made.id, "status": "active", "intent": "order",
        "extension": [{"url": f"{BASE}/StructureDefinition/referral-direction",
                       "valueCoding": {"system": f"{CS}/referral-direction",
                                       "code": made.direction}}],
        "priority": "stat" if made.green else "routine",
        "subject": {"reference": "Patient/p"}, "authoredOn": made.authored.isoformat(),
        "requester": {"reference": f"PractitionerRole/doc-{requester}"},
        "performer": [{"reference": f"Organization/{made.receiver}"}]}
    task = {"resourceType": "Task", "id": f"t-{made.id}", "status": "requested",
            "intent": "order", "focus": {"reference": f"ServiceRequest/{made.id}"},
            "for": {"reference": "Patient/p"},
            "owner": {"reference": "Organization/" + (
                "lead-heart" if made.receiver == "lead" else made.receiver)},
            "authoredOn": made.authored.isoformat()}
    answer = client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in (referral, task)]})
    assert answer.status_code == 200, answer.text
    for step in PATHS[made.status]:
        task = {**task, "status": step}
        if step == "accepted":
            task["extension"] = [{"url": ACCEPTED, "valueDateTime": made.accepted.isoformat()}]
        if step == "rejected":
            task["statusReason"] = {"coding": [{"system": f"{CS}/referral-rejection-reason",
                                                "code": "no-bed"}]}
        if step == "completed":
            task["output"] = [{"type": {"text": "治疗结果"}, "valueString": "好转"}]
        answer = client.put(f"/Task/{task['id']}", json=task)
        assert answer.status_code == 200, answer.text


def _found(client: Client) -> None:
    """The alliance's organisations, roles, affiliations and patient, in one transaction."""
    answer = client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in ALLIANCE]})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def alliance(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = Settings(storage=storage_url(request, tmp_path_factory.mktemp("kpi"), "kpi.db"))
    with Client(build_app(settings)) as client:
        _found(client)
        for made in MADE:
            _write(client, made)
        yield client


def expected(member: str) -> dict[str, float | None]:
    """The figures of a member for November 2026, counted here."""
    month = [m for m in MADE if m.authored.month == 11 and m.status != "cancelled"]
    sent = [m for m in month if m.sender == member]
    received = [m for m in month if m.receiver == member]

    def count(items: list[Made], direction: str) -> int:
        return sum(1 for m in items if m.direction == direction)
    grassroots = member in GRASSROOTS
    numerator, denominator = (count(received, "down"), count(sent, "up")) if grassroots \
        else (count(sent, "down"), count(received, "up"))
    waits = [(m.accepted - m.authored).total_seconds() / 60 for m in received if m.accepted]
    return {
        "up-sent": count(sent, "up"), "up-received": count(received, "up"),
        "down-sent": count(sent, "down"), "down-received": count(received, "down"),
        "down-up-ratio": round(numerator / denominator, 4) if denominator else None,
        "green-channel": sum(1 for m in month if m.green and member in (m.sender, m.receiver)),
        "accept-median-minutes": round(statistics.median(waits), 1) if waits else None,
        "rejection-rate": round(sum(m.status == "rejected" for m in received) / len(received),
                                4) if received else None,
    }


def figures(report: dict) -> dict[str, float | None]:
    return {g["code"]["coding"][0]["code"]: g.get("measureScore", {}).get("value")
            for g in report["group"]}


def grade(report: dict) -> str | None:
    group = next(g for g in report["group"] if g["code"]["coding"][0]["code"] == "grade")
    return group["extension"][0]["valueCoding"]["display"] if "extension" in group else None


def test_every_member_gets_its_figures(alliance):
    answer = alliance.get("/$referral-kpis", params={"period": "2026-11"})
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    reports = {e["resource"]["subject"]["reference"]: e["resource"] for e in bundle["entry"]}
    assert list(reports) == ["Organization/lead", "Organization/county", "Organization/town-a",
                             "Organization/town-b"]
    for member, report in reports.items():
        assert report["resourceType"] == "MeasureReport"
        assert (report["status"], report["type"]) == ("complete", "summary")
        assert report["measure"] == f"{BASE}/Measure/referral-kpis"
        assert report["period"] == {"start": "2026-11-01", "end": "2026-11-30"}
        found = figures(report)
        assert {k: v for k, v in found.items() if k != "grade"} == \
            expected(member.removeprefix("Organization/")), member
    assert sum(figures(r)["up-sent"] for r in reports.values()) == sum(
        1 for m in MADE if m.authored.month == 11 and m.status != "cancelled"
        and m.direction == "up")


def test_the_grade_follows_the_bands_of_the_measure(alliance):
    def graded(report: dict) -> str:
        ratio = figures(report)["down-up-ratio"]
        if ratio is None:
            return None
        return "优" if ratio >= 0.5 else "良" if ratio >= 0.3 else "中" if ratio >= 0.1 else "差"
    bundle = alliance.get("/$referral-kpis", params={"period": "2026-11"}).json()
    for entry in bundle["entry"]:
        assert grade(entry["resource"]) == graded(entry["resource"])
    measure = alliance.get("/Measure/referral-kpis").json()
    for extension in measure["extension"]:
        if extension["url"].endswith("referral-grade-band"):
            extension["extension"][1]["valueDecimal"] = 0  # every band reached: all 优
    assert alliance.put("/Measure/referral-kpis", json=measure).status_code == 200
    bundle = alliance.get("/$referral-kpis", params={"period": "2026-11"}).json()
    assert {grade(e["resource"]) for e in bundle["entry"]
            if figures(e["resource"])["down-up-ratio"] is not None} == {"优"}


def test_one_member_and_the_instance_level(alliance):
    answer = alliance.get("/Organization/town-a/$referral-kpis", params={"period": "2026-11"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["subject"] == {"reference": "Organization/town-a"}
    assert {k: v for k, v in figures(report).items() if k != "grade"} == expected("town-a")
    posted = alliance.post("/Organization/town-a/$referral-kpis", json={
        "resourceType": "Parameters", "parameter": [{"name": "period", "valueString": "2026-11"}]})
    assert figures(posted.json()) == figures(report)


def test_a_quiet_month_counts_nothing(alliance):
    report = alliance.get("/Organization/lead/$referral-kpis",
                          params={"period": "2025-02"}).json()
    found = figures(report)
    assert found["up-received"] == 0 and found["down-up-ratio"] is None
    assert report["period"] == {"start": "2025-02-01", "end": "2025-02-28"}


@pytest.mark.parametrize("period", ["", "2026-13", "2026-1", "202611", "2026-11-01", "next"])
def test_a_period_that_is_not_a_month_is_refused(alliance, period):
    answer = alliance.get("/$referral-kpis", params={"period": period} if period else {})
    assert answer.status_code == 400
    [issue] = answer.json()["issue"]
    assert issue["expression"] == ["period"]


def test_unknown_organisations_and_parameters(alliance):
    assert alliance.get("/Organization/nowhere/$referral-kpis",
                        params={"period": "2026-11"}).status_code == 404
    answer = alliance.get("/$referral-kpis", params={"period": "2026-11", "month": "11"})
    assert answer.status_code == 400


def test_the_capability_statement_names_the_operation(alliance):
    statement = alliance.get("/metadata").json()
    kpis = f"{BASE}/OperationDefinition/referral-kpis"
    assert {"name": "referral-kpis", "definition": kpis} in statement["rest"][0]["operation"]
    organization = next(r for r in statement["rest"][0]["resource"]
                        if r["type"] == "Organization")
    assert {"name": "referral-kpis", "definition": kpis} in organization["operation"]
    assert alliance.get("/OperationDefinition/referral-kpis").status_code == 200


def test_sent_referrals_are_stratified_by_receiver(alliance):
    bundle = alliance.get("/$referral-kpis", params={"period": "2026-11"}).json()
    month = [m for m in MADE if m.authored.month == 11 and m.status != "cancelled"]
    for entry in bundle["entry"]:
        member = entry["resource"]["subject"]["reference"].removeprefix("Organization/")
        for group in entry["resource"]["group"]:
            code = group["code"]["coding"][0]["code"]
            if code not in ("up-sent", "down-sent"):
                continue
            flows = {s["value"]["text"]: s["measureScore"]["value"]
                     for g in group.get("stratifier", []) for s in g["stratum"]}
            direction = code.removesuffix("-sent")
            expected_flows: dict[str, int] = {}
            for m in month:
                if m.sender == member and m.direction == direction:
                    key = f"Organization/{m.receiver}"
                    expected_flows[key] = expected_flows.get(key, 0) + 1
            assert flows == expected_flows, (member, code)


# -- the referral ledger (core/referral_ledger.py) kept by every kind of change -----------

def _november(client: Client, period: str = "2026-11") -> dict[str, float | None]:
    answer = client.get("/Organization/county/$referral-kpis", params={"period": period})
    assert answer.status_code == 200, answer.text
    return figures(answer.json())


@pytest.fixture
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    settings = Settings(storage=storage_url(request, tmp_path, "ledger.db"), expunge=True)
    with Client(build_app(settings)) as client:
        _found(client)
        yield client


def _made(id: str, status: str = "requested") -> Made:
    authored = dt.datetime(2026, 11, 5, 9, 0, tzinfo=ZONE)
    return Made(id, "up", "county", "lead", True, authored, status,
                authored + dt.timedelta(minutes=30) if status == "accepted" else None)


def test_edits_deletes_and_erasures_move_the_counts(fresh):
    _write(fresh, _made("x1"))
    _write(fresh, _made("x2", "rejected"))
    assert (_november(fresh)["up-sent"], _november(fresh)["green-channel"]) == (2, 2)
    referral = fresh.get("/ServiceRequest/x1").json()
    referral["authoredOn"] = "2026-10-31T23:59:00+08:00"  # into October
    assert fresh.put("/ServiceRequest/x1", json=referral).status_code == 200
    assert (_november(fresh)["up-sent"], _november(fresh, "2026-10")["up-sent"]) == (1, 1)
    referral["status"] = "entered-in-error"  # no longer counted anywhere
    assert fresh.put("/ServiceRequest/x1", json=referral).status_code == 200
    assert _november(fresh, "2026-10")["up-sent"] == 0
    assert _november(fresh)["rejection-rate"] is None  # x2's rejection counts for the lead
    lead = fresh.get("/Organization/lead/$referral-kpis", params={"period": "2026-11"})
    assert figures(lead.json())["rejection-rate"] == 1
    assert fresh.delete("/Task/t-x2").status_code in (200, 204)  # x2 stays, without a Task
    lead = fresh.get("/Organization/lead/$referral-kpis", params={"period": "2026-11"})
    assert (figures(lead.json())["up-received"], _november(fresh)["up-sent"]) == (0, 1)
    assert fresh.post("/ServiceRequest/x2/$expunge").status_code == 200
    assert _november(fresh)["up-sent"] == 0
    _write(fresh, _made("x3", "accepted"))  # an erased Task: counted again without it
    lead = fresh.get("/Organization/lead/$referral-kpis", params={"period": "2026-11"})
    assert figures(lead.json())["accept-median-minutes"] == 30
    assert fresh.post("/Task/t-x3/$expunge").status_code == 200
    lead = fresh.get("/Organization/lead/$referral-kpis", params={"period": "2026-11"})
    assert (figures(lead.json())["up-received"], _november(fresh)["up-sent"]) == (0, 1)


def test_a_store_without_its_ledger_builds_it_at_start(request, tmp_path):
    settings = Settings(storage=storage_url(request, tmp_path, "rebuilt.db"))
    with Client(build_app(settings)) as client:
        _found(client)
        for made in MADE[:12]:
            _write(client, made)
        before = client.get("/$referral-kpis", params={"period": "2026-11"}).json()
        storage = client.app.router.context.service.storage
        client.runner.run(_forget_ledger(storage))
        emptied = client.get("/$referral-kpis", params={"period": "2026-11"}).json()
        assert sum(figures(e["resource"])["up-sent"] for e in emptied["entry"]) == 0
        assert client.post("/$reindex").status_code == 200  # builds it again
        again = client.get("/$referral-kpis", params={"period": "2026-11"}).json()
        assert [e["resource"]["group"] for e in again["entry"]] == \
            [e["resource"]["group"] for e in before["entry"]]
        client.runner.run(_forget_ledger(storage))
    with Client(build_app(settings)) as client:  # (the same store, started again)
        after = client.get("/$referral-kpis", params={"period": "2026-11"}).json()
    assert [e["resource"]["group"] for e in after["entry"]] == \
        [e["resource"]["group"] for e in before["entry"]]
    assert sum(figures(e["resource"])["up-sent"] for e in after["entry"]) > 0


async def _forget_ledger(storage: Storage) -> None:
    """What a store written before the ledger (or migrated) looks like."""
    await storage.change_records([RecordChange(KIND, r.key, None)
                                  for r in await storage.list_records(KIND)])
    assert await storage.delete_record(BUILT, "state")
