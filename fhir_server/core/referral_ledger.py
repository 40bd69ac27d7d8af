"""The referral ledger: one row per counted referral, kept by the commit that changes the
referral, from which the monthly KPIs (core/referral_kpis.py) read a month as one range of
records.

Counting a month on the search index took nine index scans of the month's referrals
(4–5 s at 100 k on two cores); the ledger reads one range (about 0.2 s). Each row is
derived from the referral's ServiceRequest and Task through the index rows of their search
parameters (the one definition of each), so the KPIs follow the search API's reading:
- a referral is a ServiceRequest whose ``direction`` is up or down, with an ``authored``
  time, not entered-in-error, whose Task (the Task whose ``focus`` it is) is not
  cancelled;
- its row sits under the key ``YYYY-MM/<id>`` (the month of ``authoredOn`` in the
  server's zone) and holds [direction, requester, owner, green channel, authored ms,
  accepted ms, rejected].
A store written before the ledger existed, or migrated (rows are not copied), gets its rows
at start-up (``ensure``); ``$reindex`` builds them again. An erased (``$expunge``)
ServiceRequest or Task leaves the ledger through ``forget``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server import jsonbytes
from fhir_server.search.extract import Indexer
from fhir_server.search.plan import Node, Query
from fhir_server.storage.port import Fact, RecordChange, Storage
from fhir_server.types import Resource

KIND = "referral-ledger"
BUILT = "referral-ledger-built"  # its record says which rules and zone built the rows
VERSION = 1
BATCH = 2000
REFERRAL_KEYS = frozenset({"ServiceRequest.direction", "ServiceRequest.priority",
                           "ServiceRequest.status", "ServiceRequest.requester",
                           "ServiceRequest.authored"})
TASK_KEYS = frozenset({"Task.focus", "Task.owner", "Task.accepted", "Task.status"})
GREEN = frozenset({"stat", "asap"})

Parse = Callable[[str, list[tuple[str, str]]], tuple[Node, ...]]  # (type, pairs) -> criteria
Written = tuple[str, str, Resource | None]  # (type, id, new content; None: deleted)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """What the KPIs need of one referral."""

    direction: str
    requester: str | None  # "PractitionerRole/id" (or whatever the request names)
    owner: str | None  # the Task's owner
    green: bool
    authored_ms: int
    accepted_ms: int | None
    rejected: bool

    def encoded(self) -> bytes:
        return orjson.dumps([self.direction, self.requester, self.owner, self.green,
                             self.authored_ms, self.accepted_ms, self.rejected])


class ReferralLedger:
    """Keeps and reads the ledger in a storage."""

    def __init__(self, storage: Storage, indexer: Indexer, parse: Parse,
                 zone: dt.tzinfo) -> None:
        self.storage = storage
        self.indexer = indexer
        self.parse = parse
        self.zone = zone

    # -- reading -------------------------------------------------------------------------

    async def month(self, label: str) -> list[list[Any]]:
        """The rows of a month ("YYYY-MM") as lists of LedgerRow's fields in order, decoded
        as one JSON array (objects or a decode per row cost more than reading them)."""
        values = await self.storage.record_values(KIND, f"{label}/")
        return orjson.loads(b"[%s]" % b",".join(values))  # type: ignore[no-any-return]

    # -- rows of resources ---------------------------------------------------------------

    def _key(self, authored_ms: int, id: str) -> str:
        when = dt.datetime.fromtimestamp(authored_ms / 1000, self.zone)
        return f"{when:%Y-%m}/{id}"

    def _values(self, resource: Resource | None, keys: frozenset[str]
                ) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
        found: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
        for table, rows in (self.indexer.rows(resource, only=keys).items()
                            if resource is not None else ()):
            for key, values in rows:
                found[table, key].append(values)
        return found

    def _authored_key(self, referral: Resource | None) -> str | None:
        """The key a ServiceRequest's row has (or would have)."""
        authored = self._values(referral, REFERRAL_KEYS)[("sort", "ServiceRequest.authored")]
        return self._key(int(authored[0][0]), referral["id"]) \
            if authored and referral is not None else None

    def row(self, referral: Resource | None, task: Resource | None
            ) -> tuple[str, LedgerRow] | None:
        """The key and row of a referral (None: it does not count)."""
        found = self._values(referral, REFERRAL_KEYS)
        codes = {key: {v[1] for v in found["token", key]} for key in (
            "ServiceRequest.direction", "ServiceRequest.priority", "ServiceRequest.status")}
        direction = sorted(codes["ServiceRequest.direction"] & {"up", "down"})
        authored = found["sort", "ServiceRequest.authored"]
        if referral is None or not direction or not authored \
                or "entered-in-error" in codes["ServiceRequest.status"]:
            return None
        done = self._values(task, TASK_KEYS)
        status = {v[1] for v in done["token", "Task.status"]}
        if "cancelled" in status:
            return None
        accepted = done["sort", "Task.accepted"]
        return self._key(int(authored[0][0]), referral["id"]), LedgerRow(
            direction[0], _target(found["reference", "ServiceRequest.requester"]),
            _target(done["reference", "Task.owner"]),
            bool(codes["ServiceRequest.priority"] & GREEN), int(authored[0][0]),
            int(accepted[0][0]) if accepted else None, "rejected" in status)

    # -- keeping -------------------------------------------------------------------------

    async def changes(self, written: Sequence[Written]) -> list[RecordChange]:
        """The ledger changes of a commit: the rows of the referrals whose ServiceRequest
        or Task it writes, computed from what it writes and what is stored."""
        requests = {id: r for t, id, r in written if t == "ServiceRequest"}
        tasks = {id: r for t, id, r in written if t == "Task"}
        task_of: dict[str, Resource] = {}  # referral id -> the Task this commit writes for it
        touched = set(requests)
        for id, task in tasks.items():
            focus, was = self._focus(task), self._focus(await self._read("Task", id))
            if focus and task is not None:
                task_of[focus] = task
            touched |= {f for f in (focus, was) if f}
        changes: list[RecordChange] = []
        skipped = set(tasks)
        for id in sorted(touched):
            before = await self._read("ServiceRequest", id)
            after = requests.get(id, before)
            task = task_of.get(id) or await self._stored_task(id, skipped)
            old, new = self._authored_key(before), self.row(after, task)
            if old is not None and (new is None or new[0] != old):
                changes.append(RecordChange(KIND, old, None))
            if new is not None:
                changes.append(RecordChange(KIND, new[0], new[1].encoded()))
        return changes

    def _focus(self, task: Resource | None) -> str | None:
        """The id of the ServiceRequest a Task is about (as its ``focus`` is indexed)."""
        target = _target(self._values(task, TASK_KEYS)["reference", "Task.focus"])
        kind, _, id = (target or "").partition("/")
        return id if kind == "ServiceRequest" else None

    async def referral_of(self, rtype: str, id: str) -> str | None:
        """The ServiceRequest id of a stored Task (None for anything else)."""
        return self._focus(await self._read("Task", id)) if rtype == "Task" else None

    async def forget(self, erased: Sequence[tuple[str, str]], referral: str | None) -> None:
        """After an erasure: drop the rows of erased ServiceRequests (rare: one scan of the
        ledger's keys) and count ``referral`` (whose Task was erased) again."""
        gone = {f"/{id}" for rtype, id in erased if rtype == "ServiceRequest"}
        changes = [RecordChange(KIND, r.key, None) for r in (
            await self.storage.list_records(KIND) if gone else ())
            if r.key[r.key.index("/"):] in gone]
        if referral is not None and f"/{referral}" not in gone:
            changes += await self.changes([("ServiceRequest", referral,
                                            await self._read("ServiceRequest", referral))])
        await self.storage.change_records(changes)

    async def _read(self, rtype: str, id: str) -> Resource | None:
        found = await self.storage.read(rtype, id)
        return None if found is None or found.deleted else jsonbytes.loads(found.content)

    async def _stored_task(self, referral: str, skipped: set[str]) -> Resource | None:
        """The stored Task of a referral (not one of ``skipped``, which the commit writes)."""
        for id, in await self.storage.facts(Query(("Task",), self.parse(
                "Task", [("focus", f"ServiceRequest/{referral}")])), []):
            if id not in skipped:
                return await self._read("Task", id)
        return None

    # -- building ------------------------------------------------------------------------

    async def ensure(self, rebuild: bool = False) -> int:
        """Build the rows when the store has none from these rules and zone (written
        before the ledger, or migrated), or when asked (``$reindex``: the parameters may
        read differently); return how many were built."""
        state = orjson.dumps({"version": VERSION, "zone": str(self.zone)})
        if not rebuild and await self.storage.get_record(BUILT, "state") == state:
            return 0
        changes = [RecordChange(KIND, r.key, None)
                   for r in await self.storage.list_records(KIND)]
        tasks = {focus: id for id, focus in await self.storage.facts(
            Query(("Task",), ()), [Fact("reference", "Task.focus")]) if focus}
        built = 0
        for id, in await self.storage.facts(Query(("ServiceRequest",), self.parse(
                "ServiceRequest", [("direction", "up,down")])), []):
            task = tasks.get(f"ServiceRequest/{id}")
            row = self.row(await self._read("ServiceRequest", id),
                           await self._read("Task", task) if task else None)
            if row is not None:
                changes.append(RecordChange(KIND, row[0], row[1].encoded()))
                built += 1
        for start in range(0, len(changes), BATCH):
            await self.storage.change_records(changes[start:start + BATCH])
        await self.storage.put_record(BUILT, "state", state)
        return built


def _target(rows: list[tuple[Any, ...]]) -> str | None:
    """The first "Type/id" of a reference parameter's rows."""
    return next((f"{r[0]}/{r[1]}" for r in rows if r[0] and r[1]), None)

