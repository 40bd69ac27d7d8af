"""Test support for referrals: new referrals of the demo alliance and moves of their Task."""

from __future__ import annotations

import copy
import itertools

import orjson

from fhir_server.package import demo_folder

DEMO = orjson.loads((demo_folder() / "alliance-demo.json").read_bytes())
BY_ID = {e["resource"]["id"]: e["resource"] for e in DEMO["entry"]}
CS = "http://alliance-fhir.org/fhir/CodeSystem"
STATUSES = ("requested", "received", "accepted", "rejected", "in-progress", "completed",
            "cancelled")
ALLOWED = {("requested", "received"), ("requested", "cancelled"), ("received", "accepted"),
           ("received", "rejected"), ("received", "cancelled"), ("accepted", "in-progress"),
           ("in-progress", "completed")}
PATH = {"requested": (), "received": ("received",), "accepted": ("received", "accepted"),
        "rejected": ("received", "rejected"), "cancelled": ("cancelled",),
        "in-progress": ("received", "accepted", "in-progress"),
        "completed": ("received", "accepted", "in-progress", "completed")}
REASON = {"coding": [{"system": f"{CS}/referral-rejection-reason", "code": "no-bed",
                      "display": "无床位"}]}
OUTCOME = [{"type": {"text": "治疗结果"}, "valueString": "好转出院，建议社区随访"}]
SERIAL = itertools.count()


def open_referral(client, direction: str = "up") -> tuple[dict, dict]:
    """A new referral (ServiceRequest + Task, one transaction): (task, referral) as stored."""
    source = "ref-up-1" if direction == "up" else "ref-down-1"
    referral = copy.deepcopy(BY_ID[source])
    task = copy.deepcopy(BY_ID["task-up-1" if direction == "up" else "task-down-1"])
    number = next(SERIAL)
    referral.update(id=f"flow-ref-{number}", status="active",
                    identifier=[{"system": "http://alliance-fhir.org/fhir/sid/referral",
                                 "value": f"FLOW-{number}"}])
    task.update(id=f"flow-task-{number}", status="requested",
                focus={"reference": f"ServiceRequest/flow-ref-{number}"},
                basedOn=[{"reference": f"ServiceRequest/flow-ref-{number}"}])
    answer = client.post("/", json=transaction(referral, task))
    assert answer.status_code == 200, answer.text
    return client.get(f"/Task/{task['id']}").json(), referral


def transaction(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}


def moved(task: dict, status: str) -> dict:
    """The Task at ``status``, with what that status needs."""
    task = {**copy.deepcopy(task), "status": status}
    task.pop("meta", None)
    task["meta"] = {"profile": BY_ID["task-up-1"]["meta"]["profile"]}
    if status == "rejected":
        task["statusReason"] = REASON
    if status == "completed":
        task["output"] = OUTCOME
    return task


def move(client, task: dict, status: str, in_transaction: bool = False):
    body = moved(task, status)
    if in_transaction:
        return client.post("/", json=transaction(body))
    return client.put(f"/Task/{task['id']}", json=body)


def reach(client, status: str, direction: str = "up") -> tuple[dict, dict]:
    task, referral = open_referral(client, direction)
    for step in PATH[status]:
        answer = move(client, task, step)
        assert answer.status_code == 200, answer.text
        task = answer.json()
    return task, referral
