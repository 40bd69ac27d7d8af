"""Turns writes into notifications, in every worker, right after each commit.

**rest-hook** (durable, at least once): one worker at a time holds the dispatcher's lease
(a record, renewed while it works). It reads history after its cursor (a record), writes
an outbox record for each Subscription a write triggers, then moves the cursor: a crash
between the two repeats notifications, never loses one. Each outbox record is delivered
(``POST`` to the endpoint without a body, or with ``channel.payload`` ``PUT
[endpoint]/[type]/[id]`` with the resource, with the channel's headers) and removed once
the receiver answers 2xx; a failure is retried with doubling waits
(``FHIR_SUBSCRIPTION_RETRY_SECONDS``), and after ``FHIR_SUBSCRIPTION_RETRIES`` failures
the Subscription is set ``error`` with the reason in ``error`` and its outbox dropped.
Records live in storage: a restart resumes where the last worker stopped.

**websocket**: each worker follows history for the Subscriptions bound on its own sockets
(an in-memory cursor from when it started) and sends ``ping <id>``.

A worker wakes as soon as its own commits land (``FhirService.committed``) and polls every
``POLL_SECONDS`` for other workers' commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import httpx
import orjson

from fhir_server import jsonbytes
from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.service import FhirService
from fhir_server.storage.port import HistoryEntry
from fhir_server.subscriptions.matcher import Active, GateSource, Hit, Matcher
from fhir_server.subscriptions.websocket import Reader, WebsocketHub
from fhir_server.types import Resource

log = logging.getLogger("fhir_server")
LEASE, CURSOR, OUTBOX = "subscription-lease", "subscription-cursor", "subscription-outbox"
LEASE_MS = 10_000
POLL_SECONDS = 0.2
BATCH = 500  # history entries per step
SENDS = 16  # deliveries at once
SEND_TIMEOUT = 10.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Notifier:
    """The notifications of one worker."""

    def __init__(self, service: FhirService, settings: Settings, read: Reader,
                 gates: GateSource | None = None) -> None:
        self.service, self.storage = service, service.storage
        self.retries = max(1, settings.subscription_retries)
        self.retry_ms = int(settings.subscription_retry_seconds * 1000)
        self.matcher = Matcher(service, gates)
        self.hub = WebsocketHub(read)
        self.worker = uuid.uuid4().hex.encode()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._socket_cursor = 0
        self._active: list[Active] | None = None
        self._holding, self._lease_checked = False, 0  # the dispatcher's lease, as last seen
        service.committed.append(self._wake.set)

    async def open(self) -> None:
        mark = await self.storage.snapshot_mark()
        self._socket_cursor = mark
        await self.storage.put_record(CURSOR, "seq", str(mark).encode(), only_new=True)
        self._http = httpx.AsyncClient(timeout=SEND_TIMEOUT)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._forever())

    async def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()
        if await self.storage.get_record(LEASE, "dispatcher") == self.worker:
            await self.storage.delete_record(LEASE, "dispatcher")

    async def _forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            try:
                busy = await self.step()
            except Exception:
                log.exception("subscription notifications failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def step(self) -> bool:
        """One round: websocket pings, then (holding the lease) the outbox; whether more
        work is waiting."""
        more = await self._sockets()
        if await self._leased():
            more = await self._scan() or more
            await self._deliver()
        return more

    async def _subscriptions(self, entries: list[HistoryEntry]) -> list[Active]:
        """The active Subscriptions, read again when a batch writes one."""
        if self._active is None or any(e.version.resource_type == "Subscription"
                                       for e in entries):
            self._active = await self.matcher.active()
        return self._active

    # -- websocket ---------------------------------------------------------------------

    async def _sockets(self) -> bool:
        watched = self.hub.watched()
        if not watched:
            self._socket_cursor = await self.storage.snapshot_mark()
            return False
        entries = await self.storage.versions(self._socket_cursor, BATCH)
        if not entries:
            return False
        subscriptions = [s for s in await self._subscriptions(entries)
                         if s.channel == "websocket" and s.id in watched]
        for id in {hit.subscription.id for hit in await self.matcher.hits(entries,
                                                                           subscriptions)}:
            await self.hub.ping(id)
        self._socket_cursor = entries[-1].seq
        return len(entries) == BATCH

    # -- rest-hook -----------------------------------------------------------------------

    async def _leased(self) -> bool:
        """Whether this worker dispatches: it holds the lease, renewed once half of it
        passed (a write every few seconds, not every step); others try as often."""
        now = now_ms()
        if now < self._lease_checked + LEASE_MS // 2:
            return self._holding
        self._lease_checked = now
        expires = now + LEASE_MS
        self._holding = await self.storage.put_record(LEASE, "dispatcher", self.worker,
                                                      expires, only_new=True)
        if not self._holding and await self.storage.get_record(LEASE, "dispatcher") \
                == self.worker:
            await self.storage.put_record(LEASE, "dispatcher", self.worker, expires)
            self._holding = True
        return self._holding

    async def _scan(self) -> bool:
        cursor = int(await self.storage.get_record(CURSOR, "seq") or b"0")
        entries = await self.storage.versions(cursor, BATCH)
        if not entries:
            return False
        hooks = [s for s in await self._subscriptions(entries) if s.channel == "rest-hook"]
        last = entries[-1].seq
        for hit in await self.matcher.hits(entries, hooks):
            key = f"{last:020d}/{hit.subscription.id}/{hit.resource_type}/{hit.id}"
            await self.storage.put_record(OUTBOX, key, _job(hit, 0, now_ms()))
        await self.storage.put_record(CURSOR, "seq", str(last).encode())
        return len(entries) == BATCH

    async def _deliver(self) -> None:
        now = now_ms()
        due = [r for r in await self.storage.list_records(OUTBOX)
               if orjson.loads(r.value)["due"] <= now][:SENDS]
        await asyncio.gather(*(self._send(r.key, orjson.loads(r.value)) for r in due))

    async def _send(self, key: str, job: dict[str, Any]) -> None:
        stored = await self.storage.read("Subscription", job["subscription"])
        subscription = None if stored is None or stored.deleted \
            else jsonbytes.loads(stored.content)
        if subscription is None or subscription.get("status") != "active":
            await self.storage.delete_record(OUTBOX, key)
            return
        channel = subscription.get("channel") or {}
        headers = [(n.strip(), v.strip()) for n, _, v in
                   (str(h).partition(":") for h in channel.get("header") or ())]
        try:
            if channel.get("payload"):
                current = await self.storage.read(job["type"], job["id"])
                content = b"" if current is None or current.deleted else current.content
                url = f"{str(channel['endpoint']).rstrip('/')}/{job['type']}/{job['id']}"
                answer = await self._client().put(url, content=content, headers=[
                    *headers, ("content-type", str(channel["payload"]))])
            else:
                answer = await self._client().post(str(channel["endpoint"]), headers=headers)
            failure = None if answer.is_success else f"the endpoint answered {answer.status_code}"
        except httpx.HTTPError as error:
            failure = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if failure is None:
            await self.storage.delete_record(OUTBOX, key)
        else:
            await self._failed(key, job, subscription, failure)

    async def _failed(self, key: str, job: dict[str, Any], subscription: Resource,
                      failure: str) -> None:
        attempts = job["attempts"] + 1
        if attempts < self.retries:
            wait = self.retry_ms * 2 ** (attempts - 1)
            await self.storage.put_record(OUTBOX, key, orjson.dumps(
                {**job, "attempts": attempts, "due": now_ms() + wait}))
            return
        for record in await self.storage.list_records(OUTBOX):
            if orjson.loads(record.value)["subscription"] == job["subscription"]:
                await self.storage.delete_record(OUTBOX, record.key)
        subscription.pop("meta", None)
        errored = {**subscription, "status": "error", "error": (
            f"{attempts} deliveries failed, the last: {failure} / 通知多次发送失败")}
        try:
            await self.service.commit([self.service.prepare_update(
                "Subscription", str(subscription["id"]), errored)], gated=False)
        except FhirError as error:
            log.warning("Subscription/%s could not be set in error: %s", subscription["id"],
                        error)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=SEND_TIMEOUT)
        return self._http


def _job(hit: Hit, attempts: int, due: int) -> bytes:
    return orjson.dumps({"subscription": hit.subscription.id, "type": hit.resource_type,
                         "id": hit.id, "attempts": attempts, "due": due})
