"""Two-way referral as a workflow: the whole Task state table, in plain requests and inside
transactions, what rejection and completion need, and the ServiceRequest that follows."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from referral_support import (
    ALLOWED,
    BY_ID,
    OUTCOME,
    STATUSES,
    move,
    moved,
    open_referral,
    reach,
    transaction,
)


@pytest.mark.parametrize("in_transaction", [False, True], ids=["request", "transaction"])
@pytest.mark.parametrize(("before", "after"), [
    (b, a) for b in STATUSES for a in STATUSES if a != b])
def test_the_state_table(demo, before, after, in_transaction):
    task, _ = reach(demo, before)
    answer = move(demo, task, after, in_transaction)
    stored = demo.get(f"/Task/{task['id']}").json()
    if (before, after) in ALLOWED:
        assert answer.status_code == 200, answer.text
        assert stored["status"] == after
        return
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["issue"]
    assert issue["code"] == "business-rule"
    assert issue["expression"][0].endswith("Task.status") or issue["expression"] == [
        "Bundle.entry[0].resource.status"]
    allowed = [a for b, a in sorted(ALLOWED) if b == before]
    assert all(a in issue["diagnostics"] for a in allowed)
    assert f"from {before} to {after}" in issue["diagnostics"] and "转诊任务" in \
        issue["diagnostics"]
    assert stored["meta"]["versionId"] == task["meta"]["versionId"]  # nothing written


@pytest.mark.parametrize(("status", "referral_status"), [
    ("received", "active"), ("accepted", "active"), ("in-progress", "active"),
    ("completed", "completed"), ("rejected", "revoked"), ("cancelled", "revoked")])
def test_the_referral_follows_its_task(demo, status, referral_status):
    _, referral = reach(demo, status)
    stored = demo.get(f"/ServiceRequest/{referral['id']}").json()
    assert stored["status"] == referral_status
    changed = referral_status != "active"
    assert stored["meta"]["versionId"] == ("2" if changed else "1")


def test_a_rejection_needs_a_coded_reason(demo):
    task, referral = reach(demo, "received")
    body = {**moved(task, "rejected"), "statusReason": {"text": "没床"}}
    answer = demo.put(f"/Task/{task['id']}", json=body)
    assert answer.status_code == 422
    [issue] = answer.json()["issue"]
    assert issue["expression"] == ["Task.statusReason"]
    assert "referral-rejection-reason" in issue["diagnostics"]
    assert demo.get(f"/Task/{task['id']}").json()["status"] == "received"
    assert demo.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "active"


def test_a_completed_downward_referral_needs_its_outcome(demo):
    task, _ = reach(demo, "in-progress", "down")
    body = moved(task, "completed")
    del body["output"]
    answer = demo.put(f"/Task/{task['id']}", json=body)
    assert answer.status_code == 422
    assert answer.json()["issue"][0]["expression"] == ["Task.output"]
    assert move(demo, task, "completed").status_code == 200


def test_an_upward_referral_completes_without_an_outcome(demo):
    task, _ = reach(demo, "in-progress", "up")
    body = moved(task, "completed")
    del body["output"]
    assert demo.put(f"/Task/{task['id']}", json=body).status_code == 200


def test_edits_that_keep_the_status_are_not_moves(demo):
    task, _ = reach(demo, "accepted")
    body = {**moved(task, "accepted"), "note": [{"text": "已安排床位"}]}
    answer = demo.put(f"/Task/{task['id']}", json=body)
    assert answer.status_code == 200, answer.text


def test_a_patch_moves_by_the_same_rules(demo):
    task, _ = reach(demo, "requested")
    patch = [{"op": "replace", "path": "/status", "value": "accepted"}]
    answer = demo.patch(f"/Task/{task['id']}", json=patch,
                        headers={"content-type": "application/json-patch+json"})
    assert answer.status_code == 422
    patch[0]["value"] = "received"
    answer = demo.patch(f"/Task/{task['id']}", json=patch,
                        headers={"content-type": "application/json-patch+json"})
    assert answer.status_code == 200, answer.text


def test_a_stale_if_match_is_refused(demo):
    task, _ = reach(demo, "received")
    answer = demo.put(f"/Task/{task['id']}", json=moved(task, "accepted"),
                      headers={"if-match": 'W/"1"'})
    assert answer.status_code == 412


def test_a_refused_move_in_a_transaction_writes_nothing(demo):
    task, referral = reach(demo, "requested")
    note = {**copy.deepcopy(BY_ID["zhang-san"]), "id": "zhang-san"}
    before = demo.get("/Patient/zhang-san").json()["meta"]["versionId"]
    note["telecom"] = [{"system": "phone", "value": "13800000000"}]
    answer = demo.post("/", json=transaction(note, moved(task, "completed")))
    assert answer.status_code == 422
    assert demo.get("/Patient/zhang-san").json()["meta"]["versionId"] == before
    assert demo.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "active"


def test_a_referral_written_beside_its_task_must_agree_with_it(demo):
    task, referral = reach(demo, "in-progress")
    stored = demo.get(f"/ServiceRequest/{referral['id']}").json()
    stored.pop("meta")
    answer = demo.post("/", json=transaction(stored, moved(task, "completed")))
    assert answer.status_code == 422
    assert "must be completed" in answer.json()["issue"][0]["diagnostics"]
    answer = demo.post("/", json=transaction({**stored, "status": "completed"},
                                             moved(task, "completed")))
    assert answer.status_code == 200, answer.text


def test_a_referral_task_must_focus_on_a_referral(demo):
    other = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "code": {"text": "血常规"}, "subject": {"reference": "Patient/zhang-san"}}
    created = demo.post("/ServiceRequest", json=other).json()
    task = moved(BY_ID["task-up-1"], "requested")
    del task["id"]
    task["focus"] = {"reference": f"ServiceRequest/{created['id']}"}
    answer = demo.post("/Task", json=task)
    assert answer.status_code == 422
    [issue] = answer.json()["issue"]
    assert issue["expression"] == ["Task.focus"] and issue["code"] == "business-rule"


def test_a_task_created_under_way_is_accepted_with_what_its_status_needs(demo):
    """A referral imported in mid-course (R4 Task may be created in any status)."""
    task, referral = open_referral(demo, "down")
    body = moved(task, "completed")
    body["id"] = "imported-task"
    del body["output"]
    assert demo.put("/Task/imported-task", json=body).status_code == 422
    body["output"] = OUTCOME
    assert demo.put("/Task/imported-task", json=body).status_code == 201
    assert demo.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "completed"


def _accepted(task: dict) -> str | None:
    return next((e["valueDateTime"] for e in task.get("extension", [])
                 if e["url"].endswith("/referral-accepted")), None)


def test_acceptance_is_stamped_with_the_time_of_its_version_and_kept(demo):
    task, _ = reach(demo, "accepted")
    assert _accepted(task) == task["meta"]["lastUpdated"]
    started = move(demo, task, "in-progress").json()  # the client's body lacks the stamp
    assert _accepted(started) == task["meta"]["lastUpdated"]
    day = dt.datetime.fromisoformat(task["meta"]["lastUpdated"]).astimezone(
        dt.timezone(dt.timedelta(hours=8))).date()  # (a day of the server's zone)
    found = demo.get("/Task", params={"accepted": day.isoformat(), "_id": task["id"]}).json()
    assert found["total"] == 1


def test_an_imported_acceptance_time_is_kept(demo):
    task, _ = reach(demo, "received")
    body = moved(task, "accepted")
    body["extension"] = [{"url": "http://alliance-fhir.org/fhir/StructureDefinition/"
                                 "referral-accepted", "valueDateTime": "2026-11-02T09:30:00+08:00"}]
    assert _accepted(demo.put(f"/Task/{task['id']}", json=body).json()) == \
        "2026-11-02T09:30:00+08:00"


def test_the_worklist_lists_green_channel_first_then_oldest(demo):
    """A receiving organisation's open referrals: Task?owner=…&status=requested,received
    &_sort=urgency,authored-on (each Task carries its referral's priority)."""
    made = {}
    for priority, day in (("routine", "2026-11-01"), ("stat", "2026-11-03"),
                          ("asap", "2026-11-02"), ("routine", "2026-10-30"),
                          ("stat", "2026-10-01")):
        task, referral = open_referral(demo)
        referral.update(priority=priority, authoredOn=day)
        task = {**moved(task, "requested"), "owner": {"reference": "Organization/tcm"},
                "authoredOn": day}
        del task["priority"]
        answer = demo.post("/", json=transaction(referral, task))
        assert answer.status_code == 200, answer.text
        made[task["id"]] = (priority, day)
        assert demo.get(f"/Task/{task['id']}").json()["priority"] == priority
    done = next(t for t, (p, d) in made.items() if d == "2026-10-01")
    demo.put(f"/Task/{done}", json={**moved(demo.get(f"/Task/{done}").json(), "cancelled")})
    page = demo.get("/Task", params={"owner": "Organization/tcm",
                                     "status": "requested,received",
                                     "_sort": "urgency,authored-on"}).json()
    assert [made[e["resource"]["id"]] for e in page["entry"]] == [
        ("stat", "2026-11-03"), ("asap", "2026-11-02"), ("routine", "2026-10-30"),
        ("routine", "2026-11-01")]
