"""The R4 websocket channel against a real server process and a real websocket client:
bind, bound, a ping for each matching write (and none for others), refusals of what cannot
be bound; also across two workers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from server_process import ServerProcess


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("ws")
    running = ServerProcess(folder / "ws.db", "--workers", str(request.param))
    httpx.put(f"{running.base}/Organization/x", json={
        "resourceType": "Organization", "id": "x", "name": "x"}).raise_for_status()
    yield running
    running.stop()


def _subscription(server: ServerProcess, criteria: str, status: str = "requested") -> str:
    answer = httpx.post(f"{server.base}/Subscription", json={
        "resourceType": "Subscription", "status": status, "reason": "转诊通知",
        "criteria": criteria, "channel": {"type": "websocket"}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _task(server: ServerProcess, status: str) -> None:
    httpx.post(f"{server.base}/Task", json={
        "resourceType": "Task", "status": status, "intent": "order",
        "owner": {"reference": "Organization/x"}}).raise_for_status()


async def _listen(server: ServerProcess, ids: list[str], writes: list[str]) -> list[str]:
    url = server.base.replace("http://", "ws://") + "/websocket"
    heard = []
    async with websockets.connect(url) as socket:
        for id in ids:
            await socket.send(f"bind {id}")
            heard.append(await asyncio.wait_for(socket.recv(), 10))
        for status in writes:
            await asyncio.to_thread(_task, server, status)
        try:
            while True:
                heard.append(await asyncio.wait_for(socket.recv(), 2))
        except TimeoutError:
            return heard


def test_a_bound_socket_is_pinged_for_each_matching_write(server):
    id = _subscription(server, "Task?owner=Organization/x&status=requested")
    heard = asyncio.run(_listen(server, [id], ["requested", "draft", "requested"]))
    assert heard == [f"bound {id}", f"ping {id}", f"ping {id}"]


def test_what_cannot_be_bound_is_refused(server):
    off = _subscription(server, "Task?status=requested", status="off")
    heard = asyncio.run(_listen(server, ["no-such-id", off], []))
    assert heard[0].startswith("error no-such-id") and heard[1].startswith(f"error {off}")


def test_the_capability_statement_names_the_websocket(server):
    statement = httpx.get(f"{server.base}/metadata").json()
    assert {"url": "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket",
            "valueUri": server.base.replace("http://", "ws://") + "/websocket"} in \
        statement["rest"][0]["extension"]
