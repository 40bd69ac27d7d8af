"""The green channel's deadlines: a stat or asap referral not accepted in time is marked
overdue by the server (a new Task version and a Provenance), with the clock moved by the
test instead of slept; routine ones and accepted ones are left alone."""

from __future__ import annotations

import datetime as dt

import pytest
from referral_support import move, open_referral, transaction

from fhir_server.config import Settings, SettingsError
from fhir_server.core.referral_deadlines import OverdueSweep

AUTHORED = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def referral_at(client, priority: str) -> dict:
    task, referral = open_referral(client)
    referral.update(priority=priority, authoredOn=AUTHORED.isoformat())
    task.pop("priority")
    task.pop("meta")
    assert client.post("/", json=transaction(referral, task)).status_code == 200
    return client.get(f"/Task/{task['id']}").json()


def sweep(client, minutes: float) -> list[str]:
    service = client.app.router.context.service
    moment = (AUTHORED + dt.timedelta(minutes=minutes)).timestamp()
    return client.runner.run(OverdueSweep(service, clock=lambda: moment).sweep())


def test_a_stat_referral_goes_overdue_after_thirty_minutes(demo):
    task = referral_at(demo, "stat")
    assert task["id"] not in sweep(demo, 29)
    assert task["id"] in sweep(demo, 31)
    marked = demo.get(f"/Task/{task['id']}").json()
    assert marked["businessStatus"]["coding"][0]["code"] == "overdue"
    assert marked["status"] == "requested"
    assert int(marked["meta"]["versionId"]) == int(task["meta"]["versionId"]) + 1
    target = f"Task/{task['id']}/_history/{marked['meta']['versionId']}"
    found = demo.get("/Provenance", params={"target": target}).json()
    [provenance] = [e["resource"] for e in found["entry"]]
    assert provenance["agent"][0]["who"]["display"] == "alliance-fhir-server"
    assert task["id"] not in sweep(demo, 90)  # once
    assert demo.get(f"/Task/{task['id']}").json()["meta"]["versionId"] == \
        marked["meta"]["versionId"]
    listed = demo.get("/Task", params={"business-status": "overdue", "_id": task["id"]})
    assert listed.json()["total"] == 1


def test_asap_has_four_hours_and_routine_no_deadline(demo):
    asap, routine = referral_at(demo, "asap"), referral_at(demo, "routine")
    assert asap["id"] not in sweep(demo, 239)
    marked = sweep(demo, 241)
    assert asap["id"] in marked and routine["id"] not in marked
    assert routine["id"] not in sweep(demo, 60 * 24 * 30)


def test_a_referral_accepted_in_time_is_not_marked(demo):
    task = referral_at(demo, "stat")
    for step in ("received", "accepted"):
        task = move(demo, task, step).json()
    assert task["id"] not in sweep(demo, 600)
    assert "businessStatus" not in demo.get(f"/Task/{task['id']}").json()


def test_an_overdue_referral_can_still_be_accepted(demo):
    task = referral_at(demo, "stat")
    assert task["id"] in sweep(demo, 45)
    task = demo.get(f"/Task/{task['id']}").json()
    for step in ("received", "accepted"):
        answer = move(demo, task, step)
        assert answer.status_code == 200, answer.text
        task = answer.json()


@pytest.mark.parametrize("sla", ["stat=30", "stat=30x", "soon=1h", "stat:30m", "stat=m"])
def test_a_malformed_sla_is_refused_at_start(sla):
    with pytest.raises(SettingsError, match="FHIR_REFERRAL_SLA"):
        Settings(referral_sla=sla)


def test_the_sla_is_configurable():
    assert Settings(referral_sla="stat=10m, asap=2h,urgent=1d").referral_deadlines == {
        "stat": 600, "asap": 7200, "urgent": 86400}
    assert Settings(referral_sla="").referral_deadlines == {}
