"""R4 Subscriptions with rest-hook delivery to a real HTTP receiver on loopback: what is
accepted at creation, notifications with and without payload and with the channel's
headers, retries after failures, the error status after too many, and delivery after a
restart from the durable outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
from receiver import Receiver, running_receiver
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

CRITERIA = "Task?owner=Organization/x&status=requested"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, subscription_retry_seconds=0.05, subscription_retries=3)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def organizations(client: Client) -> None:
    for id in ("x", "other"):
        assert client.put(f"/Organization/{id}", json={
            "resourceType": "Organization", "id": id, "name": id}).is_success


@pytest.fixture
def client(fast: Settings) -> Iterator[Client]:
    with Client(build_app(fast)) as http:
        organizations(http)
        yield http


def subscription(endpoint: str, criteria: str = CRITERIA, **channel: object) -> dict:
    return {"resourceType": "Subscription", "status": "requested", "reason": "转诊通知",
            "criteria": criteria,
            "channel": {"type": "rest-hook", "endpoint": endpoint, **channel}}


def task(owner: str = "Organization/x", status: str = "requested") -> dict:
    return {"resourceType": "Task", "status": status, "intent": "order",
            "owner": {"reference": owner}}


def settle(client: Client, until: object = None, seconds: float = 5.0) -> None:
    """Let the server's background work run (the client's loop is idle between calls)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.runner.run(asyncio.sleep(0.05))
        if until is not None and until():  # type: ignore[operator]
            return


def test_a_requested_subscription_is_stored_active(client, receiver):
    answer = client.post("/Subscription", json=subscription(receiver.url))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "active"
    off = client.post("/Subscription", json={**subscription(receiver.url), "status": "off"})
    assert off.json()["status"] == "off"


@pytest.mark.parametrize(("change", "status", "where"), [
    ({"criteria": "Nothing?x=1"}, 400, "Subscription.criteria"),
    ({"criteria": "Task?no-such-parameter=1"}, 400, "Subscription.criteria"),
    ({"criteria": ""}, 400, "Subscription.criteria"),
    ({"channel": {"type": "email", "endpoint": "mailto:a@b.cn"}}, 422,
     "Subscription.channel.type"),
    ({"channel": {"type": "rest-hook", "endpoint": "ftp://127.0.0.1/x"}}, 400,
     "Subscription.channel.endpoint"),
    ({"channel": {"type": "rest-hook"}}, 400, "Subscription.channel.endpoint"),
    ({"channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"}}, 422,
     "Subscription.channel.endpoint"),
    ({"status": "error"}, 422, "Subscription.status"),
])
def test_bad_subscriptions_are_refused_at_creation(client, receiver, change, status, where):
    answer = client.post("/Subscription", json={**subscription(receiver.url), **change})
    assert answer.status_code == status, answer.text
    assert answer.json()["issue"][0]["expression"] == [where]
    assert client.get("/Subscription").json().get("total", 0) == 0


def test_an_xml_payload_is_refused(client, receiver):
    answer = client.post("/Subscription", json=subscription(
        receiver.url, payload="application/fhir+xml"))
    assert answer.status_code == 422


def test_a_matching_write_is_posted_without_a_body(client, receiver):
    created = client.post("/Subscription", json=subscription(
        receiver.url, header=["Authorization: Bearer secret-of-the-receiver"])).json()
    client.post("/Task", json=task("Organization/other"))  # no match
    client.post("/Task", json=task(status="received"))  # no match
    client.post("/Task", json=task())
    settle(client, lambda: receiver.requests)
    settle(client, seconds=0.3)
    [hit] = receiver.requests
    assert (hit.method, hit.path, hit.body) == ("POST", "/hook", b"")
    assert hit.headers["authorization"] == "Bearer secret-of-the-receiver"
    assert client.get(f"/Subscription/{created['id']}").json()["status"] == "active"


@pytest.mark.parametrize(("criteria", "owners"), [
    ("Task?owner=Organization/x&status=requested", ["x"]),  # decided on the index rows
    ("Task?owner=Organization/x&status:not=received&authored-on=ge2026-01-01", ["x"]),
    ("Task?authored-on=ge2026-01-01&status:not=received", ["other", "x"]),  # no equality
])
def test_only_writes_meeting_the_criteria_are_posted(client, receiver, criteria, owners):
    client.post("/Subscription", json=subscription(receiver.url, payload="application/fhir+json",
                                                   criteria=criteria))
    dated = {"authoredOn": "2026-06-01T08:00:00+08:00"}
    written = {owner: client.post("/Task", json={**task(f"Organization/{owner}"), **dated}
                                  ).json()["id"] for owner in ("other", "x")}
    client.post("/Task", json={**task(status="received"), **dated})
    settle(client, lambda: len(receiver.requests) >= len(owners))
    settle(client, seconds=0.3)
    assert sorted(hit.path for hit in receiver.requests) == sorted(
        f"/hook/Task/{written[owner]}" for owner in owners)


def test_with_a_payload_the_resource_is_put_under_the_endpoint(client, receiver):
    client.post("/Subscription", json=subscription(receiver.url,
                                                   payload="application/fhir+json"))
    stored = client.post("/Task", json=task()).json()
    settle(client, lambda: receiver.requests)
    [hit] = receiver.requests
    assert (hit.method, hit.path) == ("PUT", f"/hook/Task/{stored['id']}")
    assert hit.headers["content-type"] == "application/fhir+json"
    assert orjson.loads(hit.body)["id"] == stored["id"]


def test_an_update_that_comes_to_match_notifies(client, receiver):
    client.post("/Subscription", json=subscription(receiver.url))
    stored = client.post("/Task", json=task(status="draft")).json()
    settle(client, seconds=0.3)
    assert receiver.requests == []
    client.put(f"/Task/{stored['id']}", json={**stored, "status": "requested"})
    settle(client, lambda: receiver.requests)
    assert len(receiver.requests) == 1


def test_a_failed_delivery_is_retried(client, receiver):
    receiver.failures = [500, 503]
    client.post("/Subscription", json=subscription(receiver.url))
    client.post("/Task", json=task())
    settle(client, lambda: len(receiver.requests) >= 3)
    settle(client, seconds=0.3)
    assert len(receiver.requests) == 3  # two failures, then delivered once


def test_too_many_failures_set_the_subscription_in_error(client, receiver):
    receiver.failures = [500] * 10
    created = client.post("/Subscription", json=subscription(receiver.url)).json()
    client.post("/Task", json=task())

    def errored() -> bool:
        return client.get(f"/Subscription/{created['id']}").json()["status"] == "error"
    settle(client, errored)
    stored = client.get(f"/Subscription/{created['id']}").json()
    assert stored["status"] == "error" and "500" in stored["error"]
    assert len(receiver.requests) == 3
    client.post("/Task", json=task())
    settle(client, seconds=0.3)
    assert len(receiver.requests) == 3  # an errored subscription is not delivered
    revived = client.put(f"/Subscription/{created['id']}", json={**stored, "status": "requested"})
    assert revived.json()["status"] == "active" and "error" not in revived.json()


def test_a_notification_pending_at_shutdown_is_delivered_after_the_restart(fast):
    slow = replace(fast, subscription_retry_seconds=0.2, subscription_retries=50)
    with running_receiver() as receiver:
        port = receiver.port
        with Client(build_app(slow)) as client:
            organizations(client)
            client.post("/Subscription", json=subscription(receiver.url))
    with Client(build_app(slow)) as client:  # the receiver is down: delivery fails
        client.post("/Task", json=task())
        settle(client, seconds=0.5)
    with running_receiver(port) as receiver, Client(build_app(slow)) as client:
        settle(client, lambda: receiver.requests)
        assert len(receiver.requests) == 1


def test_a_write_while_no_worker_ran_is_notified_when_one_starts(fast):
    """The cursor lives in storage: history written while no dispatcher ran is read."""
    with running_receiver() as receiver:
        with Client(build_app(fast)) as client:
            organizations(client)
            client.post("/Subscription", json=subscription(receiver.url))
        with Client(build_app(fast), lifespan=False) as quiet:  # no background work
            service = quiet.app.router.context.service
            quiet.runner.run(service.open())
            quiet.post("/Task", json=task())
            quiet.runner.run(service.close())
        with Client(build_app(fast)) as client:
            settle(client, lambda: receiver.requests)
            assert len(receiver.requests) == 1
