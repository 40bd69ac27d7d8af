"""Turns writes into notifications, in every worker, right after each commit.

**rest-hook** (durable, at least once): one worker at a time holds the dispatcher's lease
(a record, renewed while it works). It reads history after its cursor (a record), sends
each notification a write triggers (``POST`` to the endpoint without a body, or with
``channel.payload`` ``PUT [endpoint]/[type]/[id]`` with the resource, with the channel's
headers), keeps those that failed in the outbox (records), and then moves the cursor: a
crash before it moves repeats the batch's notifications, never loses one. Outbox records
are retried with doubling waits (``FHIR_SUBSCRIPTION_RETRY_SECONDS``) and removed once the
receiver answers 2xx; after ``FHIR_SUBSCRIPTION_RETRIES`` failures the Subscription is set
``error`` with the reason in ``error`` and its outbox dropped. Records live in storage: a
restart resumes where the last worker stopped.

**websocket**: each worker follows history for the Subscriptions bound on its own sockets
(an in-memory cursor from when it started) and sends ``ping <id>``.

A worker wakes as soon as its own commits land (``FhirService.committed``), 10 ms later (the
commits landing meanwhile make one batch: under load, fewer and larger rounds), and polls
every ``POLL_SECONDS`` for other workers' commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict

from fhir_server import jsonbytes
from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.service import FhirService
from fhir_server.core.subscription_rules import headers_of
from fhir_server.periodic import finish
from fhir_server.storage.port import HistoryEntry
from fhir_server.subscriptions.matcher import Active, GateSource, Hit, Matcher
from fhir_server.subscriptions.websocket import Reader, WebsocketHub

log = logging.getLogger("fhir_server")
LEASE, CURSOR, OUTBOX = "subscription-lease", "subscription-cursor", "subscription-outbox"
LEASE_MS = 10_000
CURSOR_SECONDS = 1.0
POLL_SECONDS = 0.2
GATHER_SECONDS = 0.01  # after a commit's wake-up: the commits of the next moments join it
BATCH = 500  # history entries per step
SENDS = 64  # deliveries at once
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
        self._http: aiohttp.ClientSession | None = None
        self._socket_cursor: int | None = None  # history read for the sockets up to here
        self._retry_at: int | None = 0  # when the outbox has something due (None: empty)
        self._active: list[Active] | None = None
        self._stale = False  # a socket bound while the active Subscriptions were read
        self._holding, self._lease_checked = False, 0  # the dispatcher's lease, as last seen
        self._cursor: int | None = None  # (while holding the lease) history read up to here
        self._kept = 0.0  # when the cursor was last stored
        service.committed.append(self._wake.set)
        self.hub.binding = self._follow_sockets

    async def open(self) -> None:
        mark = await self.storage.snapshot_mark()
        await self.storage.put_record(CURSOR, "seq", str(mark).encode(), only_new=True)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._forever())

    async def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await finish(self._task)
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self._keep_cursor()
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
                    await asyncio.sleep(GATHER_SECONDS)  # (a commit woke it: let others land)

    async def step(self) -> bool:
        """One round: websocket pings, then (holding the lease) the outbox; whether more
        work is waiting."""
        more = await self._sockets()
        if await self._leased():
            more = await self._scan() or more
            await self._deliver()
        return more

    async def _subscriptions(self, entries: list[HistoryEntry]) -> list[Active]:
        """The active Subscriptions, read again when a batch writes one, or when a socket
        bound meanwhile (even while they were being read: that read may predate the
        Subscription the socket bound)."""
        if any(e.version.resource_type == "Subscription" for e in entries):
            self._active = None
        while self._active is None:
            self._stale = False
            found = await self.matcher.active()
            if not self._stale:
                self._active = found
        return self._active

    # -- websocket ---------------------------------------------------------------------

    async def _sockets(self) -> bool:
        watched = self.hub.watched()
        if not watched:
            self._socket_cursor = None
            return False
        if self._socket_cursor is None:
            await self._follow_sockets()
        assert self._socket_cursor is not None
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

    async def _follow_sockets(self) -> None:
        """A socket binds: follow history for the sockets from now on (if not already),
        and read the active Subscriptions again (it may have been created on another
        worker, in history this worker's sockets never read)."""
        self._active, self._stale = None, True
        if self._socket_cursor is None:
            self._socket_cursor = await self.storage.snapshot_mark()

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
        if not self._holding:  # (another worker dispatches: if this one takes over, it
            self._cursor, self._retry_at = None, 0  # reads the cursor and the outbox first)
        return self._holding

    async def _scan(self) -> bool:
        """Deliver what the writes after the cursor trigger (each first attempt at once),
        keep the failures in the outbox, then move the cursor: a crash before it moves
        repeats the batch's notifications, never loses one."""
        if self._cursor is None:  # (taking the lease over: where the last holder stopped)
            self._cursor = int(await self.storage.get_record(CURSOR, "seq") or b"0")
        entries = await self.storage.versions(self._cursor, BATCH)
        if not entries:
            return False
        hooks = [s for s in await self._subscriptions(entries) if s.channel == "rest-hook"]
        last = entries[-1].seq
        hits = await self.matcher.hits(entries, hooks)
        for start in range(0, len(hits), SENDS):
            await asyncio.gather(*(self._first(hit, last) for hit in hits[start:start + SENDS]))
        self._cursor = last
        if time.monotonic() - self._kept >= CURSOR_SECONDS:
            await self._keep_cursor()
        return len(entries) == BATCH

    async def _keep_cursor(self) -> None:
        """Store the cursor (every ``CURSOR_SECONDS`` and at close, not after each batch:
        a crash repeats at most that long of notifications)."""
        if self._cursor is not None and self._holding:
            await self.storage.put_record(CURSOR, "seq", str(self._cursor).encode())
        self._kept = time.monotonic()

    async def _first(self, hit: Hit, seq: int) -> None:
        subscription = hit.subscription
        failure = await self._send(subscription.endpoint, subscription.payload,
                                   subscription.headers, hit.resource_type, hit.id)
        if failure is not None:
            job = {"subscription": subscription.id, "type": hit.resource_type, "id": hit.id,
                   "attempts": 0}
            await self._failed(f"{seq:020d}/{subscription.id}/{hit.resource_type}/{hit.id}",
                               job, failure)

    async def _deliver(self) -> None:
        """Retry the outbox's notifications that are due (the outbox is listed only when
        something in it is due, as far as this worker knows)."""
        now = now_ms()
        if self._retry_at is None or self._retry_at > now:
            return
        jobs = [(r.key, orjson.loads(r.value)) for r in await self.storage.list_records(OUTBOX)]
        due = [(key, job) for key, job in jobs if job["due"] <= now][:SENDS]
        later = [job["due"] for _, job in jobs if job["due"] > now]
        self._retry_at = now if len(due) == SENDS else min(later, default=None)
        await asyncio.gather(*(self._retry(key, job) for key, job in due))

    async def _retry(self, key: str, job: dict[str, Any]) -> None:
        stored = await self.storage.read("Subscription", job["subscription"])
        subscription = None if stored is None or stored.deleted \
            else jsonbytes.loads(stored.content)
        if subscription is None or subscription.get("status") != "active":
            await self.storage.delete_record(OUTBOX, key)
            return
        failure = await self._send(str((subscription.get("channel") or {}).get("endpoint")),
                                   (subscription.get("channel") or {}).get("payload"),
                                   tuple(headers_of(subscription)), job["type"], job["id"])
        if failure is None:
            await self.storage.delete_record(OUTBOX, key)
        else:
            await self._failed(key, job, failure)

    async def _send(self, endpoint: str, payload: str | None,
                    headers: tuple[tuple[str, str], ...], rtype: str, id: str) -> str | None:
        """One notification; why it failed, or None."""
        try:
            if payload:
                current = await self.storage.read(rtype, id)
                content = b"" if current is None or current.deleted else current.content
                sent = self._client().put(f"{endpoint.rstrip('/')}/{rtype}/{id}", data=content,
                                          headers=CIMultiDict([*headers,
                                                               ("content-type", payload)]))
            else:
                sent = self._client().post(endpoint, data=b"", headers=CIMultiDict(headers))
            async with sent as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return None if 200 <= status < 300 else f"the endpoint answered {status}"

    async def _failed(self, key: str, job: dict[str, Any], failure: str) -> None:
        """Keep a failed notification for a later retry, or, after too many, set its
        Subscription in error and drop what it still had in the outbox."""
        attempts = job["attempts"] + 1
        if attempts < self.retries:
            due = now_ms() + self.retry_ms * 2 ** (attempts - 1)
            await self.storage.put_record(OUTBOX, key, orjson.dumps(
                {**job, "attempts": attempts, "due": due}))
            self._retry_at = due if self._retry_at is None else min(self._retry_at, due)
            return
        for record in await self.storage.list_records(OUTBOX):
            if orjson.loads(record.value)["subscription"] == job["subscription"]:
                await self.storage.delete_record(OUTBOX, record.key)
        stored = await self.storage.read("Subscription", job["subscription"])
        if stored is None or stored.deleted:
            return
        subscription = jsonbytes.loads(stored.content)
        subscription.pop("meta", None)
        errored = {**subscription, "status": "error", "error": (
            f"{attempts} deliveries failed, the last: {failure} / 通知多次发送失败")}
        try:
            await self.service.commit([self.service.prepare_update(
                "Subscription", str(subscription["id"]), errored)], gated=False)
        except FhirError as error:
            log.warning("Subscription/%s could not be set in error: %s", subscription["id"],
                        error)

    def _client(self) -> aiohttp.ClientSession:
        """The HTTP client of the deliveries (aiohttp: a fifth of httpx's CPU per request,
        which the write path shares)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))
        return self._http


