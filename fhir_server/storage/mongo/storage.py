"""The MongoDB adapter: the storage port on PyMongo's ``AsyncMongoClient``.

Every commit is one multi-document transaction (``with_transaction`` retries it on a
transient conflict); a deployment that cannot run transactions (a standalone mongod) is
refused at start-up with a clear error, never used without them. Write concern ``majority``
by default (the URL's ``w``, ``readPreference``, ``maxPoolSize`` and timeouts apply), so
an acknowledged write survives the loss of the server and of a minority of members.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
from asyncio import CancelledError
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
)

from fhir_server.search.plan import Query
from fhir_server.storage.mongo import records
from fhir_server.storage.mongo.layout import (
    CHAIN,
    COUNTERS,
    HISTORY,
    INDEXES,
    RECORDS,
    RESOURCES,
    SETTINGS,
    index_entries,
)
from fhir_server.storage.mongo.search import MongoSearch
from fhir_server.storage.mongo.writes import NUMBERS, Commit, take_numbers
from fhir_server.storage.port import (
    DEFAULT_OPTIONS,
    MARK_STALE_SECONDS,
    ChainLink,
    CommitOptions,
    Condition,
    ConditionChanged,
    ExportSlice,
    ExpungeTooLarge,
    Fact,
    GroupObserver,
    HistoryEntry,
    HistoryPage,
    HistoryQuery,
    IntegrityError,
    Record,
    RecordChange,
    Recorder,
    ReindexRows,
    SearchPage,
    SearchTimeout,
    StorageError,
    StorageStats,
    StorageUnavailable,
    StoredVersion,
    Write,
)

DEFAULT_DATABASE = "alliance_fhir"
CLIENT_DEFAULTS: dict[str, Any] = {  # defaults of the URL's own options
    "serverSelectionTimeoutMS": 5000,  # how long an operation waits for a reachable member
    "connectTimeoutMS": 5000,
    "socketTimeoutMS": 60000,  # an answer that long overdue: the server is gone (503)
    # heartbeats polled, not streamed: a server that holds a streamed heartbeat past its
    # await time (SecantusDB) stalled the client's close, and so the server's shutdown
    "serverMonitoringMode": "poll",
}
RETRY_SECONDS = 30.0  # how long a commit is retried after write conflicts
WRITE_CONFLICT = 112
EXPORT_WINDOW = 8  # an export step reads resource numbers up to this many batches ahead
Job = Callable[[AsyncClientSession], Awaitable[Any]]


def is_mongo_url(url: str) -> bool:
    return url.startswith(("mongodb://", "mongodb+srv://"))


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """PyMongo's errors as port errors, at one border (the port's own pass through)."""
    try:
        yield
    except StorageError:
        raise
    except ExecutionTimeout:
        raise SearchTimeout("search stopped past the deadline") from None
    except ConnectionFailure as error:
        raise StorageUnavailable(f"mongodb unreachable: {error}") from error
    except PyMongoError as error:
        raise StorageError(f"mongodb: {error}") from error


def _version(document: dict[str, Any]) -> StoredVersion:
    content = document.get("content")
    return StoredVersion(document["type"], document["id"], document["version"],
                         document["updated"], content is None, bytes(content or b""))


class MongoStorage:
    """The storage port on a MongoDB replica set or sharded cluster."""

    def __init__(self, url: str, search_timeout: float = 30.0,
                 clock: Callable[[], int] | None = None, explained: bool = False) -> None:
        self.url = url
        self.search_timeout = search_timeout
        self.explained = explained  # log each search query's plan (FHIR_MONGO_EXPLAIN)
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.index_of: ReindexRows | None = None
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._secret = b""
        self._last_ms = 0
        self._open_commits = 0
        self._group_observer: GroupObserver | None = None
        self._mark = (0, -MARK_STALE_SECONDS)
        self._size = 0
        self._turn = asyncio.Lock()  # one group commit at a time
        self._queue: list[tuple[Job, asyncio.Future[Any]]] = []

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._client is None:
            raise StorageError("storage is not open")
        return self._client.get_default_database(default=DEFAULT_DATABASE)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        given = {name.lower() for name in parse_qs(urlsplit(self.url).query)}
        options = {name: value for name, value in CLIENT_DEFAULTS.items()
                   if name.lower() not in given}
        if "w" not in given:
            options["w"] = "majority"
        self._client = AsyncMongoClient(self.url, **options)
        try:
            async with translated():
                await self._prepare()
            await self.ping()  # (the size ``stats`` reports until the next ping)
        except BaseException:
            await self.close()
            raise

    async def _prepare(self) -> None:
        """Check the deployment runs transactions; create the indexes (idempotent: those
        that exist are kept) and the paging secret."""
        assert self._client is not None
        hello = await self._client.admin.command("hello")
        if not hello.get("setName") and hello.get("msg") != "isdbgrid":
            raise StorageError(
                "this MongoDB is a standalone server, which cannot run multi-document "
                "transactions: run it as a replica set (one member is enough: "
                "mongod --replSet rs0, then rs.initiate()) or use a sharded cluster")
        for name, models in INDEXES.items():
            await self.db[name].create_indexes(models)
        found = await self.db[SETTINGS].find_one_and_update(
            {"_id": "paging-secret"}, {"$setOnInsert": {"value": os.urandom(32)}},
            upsert=True, return_document=ReturnDocument.AFTER)
        assert found is not None  # (upserted)
        self._secret = bytes(found["value"])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> None:
        """Answer ``dbStats`` (which also gives ``stats`` the database's size)."""
        async with translated():
            found = await self.db.command("dbStats")
        self._size = int(found.get("storageSize", 0)) + int(found.get("indexSize", 0))

    def stats(self) -> StorageStats:
        """Commits under way, and the size the last ``ping`` saw."""
        return StorageStats(self._open_commits, self._size)

    def observe_groups(self, observer: GroupObserver) -> None:
        self._group_observer = observer

    def use_indexer(self, rows: ReindexRows) -> None:
        self.index_of = rows

    async def secret(self) -> bytes:
        return self._secret

    # -- reads -------------------------------------------------------------------------

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        async with translated():
            found = await self.db[RESOURCES].find_one({"_id": f"{resource_type}/{id}"},
                                                      {"idx": 0, "refs": 0})
        return _version(found) if found else None

    async def vread(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        async with translated():
            found = await self.db[HISTORY].find_one(
                {"type": resource_type, "id": id, "version": version})
        return _version(found) if found else None

    async def history(self, query: HistoryQuery) -> HistoryPage:
        match: dict[str, Any] = {}
        if query.resource_type:
            match["type"] = query.resource_type
        if query.id:
            match["id"] = query.id
        if query.since_ms is not None:
            match["updated"] = {"$gte": query.since_ms}
        async with translated():
            if query.visible:  # the versions of the resources that now meet them
                keys = await self.db[RESOURCES].find(await self._searcher().filter(
                    (query.resource_type,) if query.resource_type else (), query.visible),
                    {"_id": 1}).to_list()
                match["$expr"] = {"$in": [{"$concat": ["$type", "/", "$id"]},
                                          [k["_id"] for k in keys]]}
            if query.at_ms is not None:
                return await self._history_at(match, query)
            total = await self.db[HISTORY].count_documents(match)
            page = {**match, **({"_id": {"$lt": query.before_seq}}
                                if query.before_seq is not None else {})}
            found = await self.db[HISTORY].find(page).sort("_id", -1).limit(
                query.count + 1).to_list()
        return _history_page(found, total, query.count)

    async def _history_at(self, match: dict[str, Any], query: HistoryQuery) -> HistoryPage:
        """Each resource's version current at ``at_ms`` (the newest not after it)."""
        match = {**match, "updated": {**match.get("updated", {}), "$lte": query.at_ms}}
        newest = [{"$match": match}, {"$sort": {"_id": -1}},
                  {"$group": {"_id": {"type": "$type", "id": "$id"},
                              "doc": {"$first": "$$ROOT"}}},
                  {"$replaceRoot": {"newRoot": "$doc"}}]
        counted = await (await self.db[HISTORY].aggregate([*newest, {"$count": "n"}])).to_list()
        after = [{"$match": {"_id": {"$lt": query.before_seq}}}] \
            if query.before_seq is not None else []
        found = await (await self.db[HISTORY].aggregate(
            [*newest, *after, {"$sort": {"_id": -1}}, {"$limit": query.count + 1}])).to_list()
        return _history_page(found, counted[0]["n"] if counted else 0, query.count)

    def _searcher(self, session: AsyncClientSession | None = None) -> MongoSearch:
        deadline_ms = max(1, int(self.search_timeout * 1000))  # (0 would mean no deadline)
        return MongoSearch(self.db, deadline_ms, session, self.explained)

    async def search(self, query: Query) -> SearchPage:
        async with translated():
            return await self._searcher().run(query)

    async def facts(self, query: Query, wanted: Sequence[Fact]) -> list[tuple[Any, ...]]:
        async with translated():
            return await self._searcher().facts(query, wanted)

    async def snapshot_mark(self) -> int:
        async with translated():
            found = await self.db[COUNTERS].find_one({"_id": NUMBERS})
        return int(found["seq"]) if found else 0

    async def export_batch(self, part: ExportSlice) -> tuple[list[bytes], int | None]:
        async with translated():
            where = await self._searcher().filter((part.resource_type,), part.where)
            del where["deleted"]  # (deleted since the mark: exported as they were)
            numbers = await self.db[COUNTERS].find_one({"_id": NUMBERS}) or {"rid": 0}
            end = min(part.after + part.size * EXPORT_WINDOW, int(numbers["rid"]))
            window = {"rid": {"$gt": part.after, "$lte": end}}
            found = await self.db[RESOURCES].find(  # (criteria of their own lead, else rid)
                {**window, **where} if next(iter(where)) == "type" else {**where, **window},
                {"idx": 0, "refs": 0}).sort("rid", 1).limit(part.size).to_list()
            contents = []
            for document in found:
                at_mark = document if document["seq"] <= part.mark else \
                    await self.db[HISTORY].find_one(
                        {"id": document["id"], "type": document["type"],
                         "_id": {"$lte": part.mark}}, sort=[("_id", -1)])
                if at_mark is None or at_mark.get("content") is None:
                    continue
                if part.since_ms is not None and at_mark["updated"] <= part.since_ms:
                    continue
                contents.append(bytes(at_mark["content"]))
        if len(found) == part.size:
            return contents, int(found[-1]["rid"])
        return contents, (end if end < int(numbers["rid"]) else None)

    async def data_mark(self) -> int:
        """Kept in memory for MARK_STALE_SECONDS (set at once by this process's commits)."""
        mark, at = self._mark
        now = time.monotonic()
        if now - at < MARK_STALE_SECONDS:
            return mark
        async with translated():
            found = await self.db[COUNTERS].find_one({"_id": NUMBERS})
        mark = int(found["data"]) if found else 0
        if self._mark[1] < now:
            self._mark = (mark, now)
        return mark

    async def chain(self, after_seq: int, size: int) -> list[ChainLink]:
        async with translated():
            links = await self.db[CHAIN].find({"_id": {"$gt": after_seq}}).sort(
                "_id", 1).limit(size).to_list()
            keys = [f"{link['type']}/{link['id']}" for link in links]
            contents = {d["_id"]: d.get("content") async for d in self.db[RESOURCES].find(
                {"_id": {"$in": keys}}, {"content": 1})}
        return [ChainLink(link["_id"], link["type"], link["id"], link["hash"],
                          bytes(contents.get(key) or b""))
                for link, key in zip(links, keys, strict=True)]

    async def continue_chain(self, seq: int, hash: str) -> None:
        async with translated():
            await self.db[COUNTERS].update_one(
                {"_id": NUMBERS}, {"$set": {"chain": seq, "hash": hash}}, upsert=True)

    async def versions(self, after_seq: int, size: int) -> list[HistoryEntry]:
        async with translated():
            found = await self.db[HISTORY].find({"_id": {"$gt": after_seq}}).sort(
                "_id", 1).limit(size).to_list()
        return [HistoryEntry(d["_id"], _version(d), d["method"]) for d in found]

    # -- writes ------------------------------------------------------------------------

    def _now(self) -> int:
        self._last_ms = max(self.clock(), self._last_ms)
        return self._last_ms

    async def _transaction(self, job: Job) -> Any:
        """Run ``job`` in a transaction. This process's commits are group-committed: the
        first waiter runs every job queued by then in one transaction, in order (each sees
        the writes of those before it); when one of them fails, each runs again alone, so
        that only the failing one fails. A write conflict with another process's commit
        (MongoDB aborts the later of two) is retried."""
        assert self._client is not None
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((job, done))
        self._open_commits += 1
        try:
            async with self._turn:
                if not done.done():
                    batch, self._queue = self._queue, []
                    # (shielded: the others' commits go on when this caller gives up)
                    await asyncio.shield(self._run_group(batch))
            return await done
        finally:
            self._open_commits -= 1

    async def _run_group(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        async def all_of(session: AsyncClientSession) -> list[Any]:
            results: list[Any] = []
            merged: list[PlainCommit] = []  # applied as one (fewer round trips)
            for job, _ in batch:
                if merged and not merged[0].joins(job):
                    results += await self._apply_merged(session, merged)
                    merged = []
                if isinstance(job, PlainCommit) and not job.conditions:
                    merged.append(job)
                else:
                    results.append(await job(session))
            return results + (await self._apply_merged(session, merged) if merged else [])
        try:
            results = await self._retried(all_of)
        except CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except Exception as error:
            if len(batch) > 1 and not isinstance(error, StorageUnavailable):
                for job, done in batch:
                    await self._run_group([(job, done)])
            else:
                for _, done in batch:
                    done.set_exception(error)
            return
        if self._group_observer is not None:  # before the commits are answered
            self._group_observer(len(batch))
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)

    async def _retried(self, job: Job) -> Any:
        """``job`` in one transaction, tried again after write conflicts."""
        assert self._client is not None
        deadline = time.monotonic() + RETRY_SECONDS
        async with translated(), self._client.start_session() as session:
            for attempt in itertools.count():
                try:
                    return await _attempt(session, job)
                except OperationFailure as error:
                    if not _conflict(error) or time.monotonic() > deadline:
                        raise
                await asyncio.sleep(min(0.001 * 2 ** attempt, 0.1) * random.random())

    async def commit(self, writes: Sequence[Write], options: CommitOptions = DEFAULT_OPTIONS,
                     conditions: Sequence[Condition] = ()) -> list[StoredVersion]:
        if self._client is None:
            raise StorageError("storage is not open")

        stored, done = await self._transaction(PlainCommit(self, writes, options, conditions))
        self._mark = (max(done.mark, self._mark[0]), time.monotonic())
        return stored  # type: ignore[no-any-return]

    async def _apply_merged(self, session: AsyncClientSession, commits: list[PlainCommit],
                            ) -> list[tuple[list[StoredVersion], Commit]]:
        """Commits without conditions applied as one, each answered its own versions."""
        stored, done = await self._apply(session, [w for c in commits for w in c.writes],
                                         commits[0].options)
        ends = list(itertools.accumulate(len(c.writes) for c in commits))
        return [(stored[end - len(c.writes):end], done)
                for c, end in zip(commits, ends, strict=True)]

    async def _apply(self, session: AsyncClientSession, writes: Sequence[Write],
                     options: CommitOptions) -> tuple[list[StoredVersion], Commit]:
        db = self.db
        keys = list(dict.fromkeys(f"{w.resource_type}/{w.id}" for w in writes))
        current = {d["_id"]: d async for d in db[RESOURCES].find(
            {"_id": {"$in": keys}}, {"idx": 0}, session=session)}
        new = sum(key not in current for key in keys)
        numbers = await take_numbers(db, session, len(writes), new,
                                     any(w.link is None for w in writes))
        done = Commit(db, session, self._now(), numbers["seq"] - len(writes),
                      numbers["rid"] - new, numbers["data"], current, frozenset(current),
                      (numbers.get("chain", 0), numbers.get("hash", "")))
        stored = [done.apply(write) for write in writes]
        await done.flush()
        await done.check_unique(writes)
        await done.check_integrity(writes, options)
        return stored, done

    async def index_deferred(self, size: int) -> int:
        async with translated():
            found = await self.db[RESOURCES].find({"later": True}, {"content": 1}).limit(
                size).to_list()
            for document in found:
                rows = self.index_of(bytes(document["content"])) if self.index_of else {}
                await self.db[RESOURCES].update_one(
                    {"_id": document["_id"], "later": True},
                    {"$set": {"idx": index_entries(rows)}, "$unset": {"later": ""}})
        return len(found)

    async def reindex_batch(self, after_rid: int, size: int,
                            rows: ReindexRows) -> tuple[int | None, int]:
        async with translated():
            found = await self.db[RESOURCES].find(
                {"rid": {"$gt": after_rid}, "deleted": False}, {"content": 1, "rid": 1}
            ).sort("rid", 1).limit(size).to_list()
            for document in found:
                await self.db[RESOURCES].update_one(
                    {"_id": document["_id"]},
                    {"$set": {"idx": index_entries(rows(bytes(document["content"])))},
                     "$unset": {"later": ""}})
            if len(found) < size:
                await self.db[SETTINGS].delete_one({"_id": "reindex"})
                return None, len(found)
        return int(found[-1]["rid"]), len(found)

    async def pending_reindex(self) -> bool:
        async with translated():
            return await self.db[SETTINGS].find_one({"_id": "reindex"}) is not None

    async def expunge(self, resource_type: str, id: str, cascade: bool = False,
                      limit: int = 1000, record: Recorder | None = None,
                      ) -> list[tuple[str, str]]:
        if self._client is None:
            raise StorageError("storage is not open")

        async def job(session: AsyncClientSession) -> list[tuple[str, str]]:
            return await self._expunge(session, (resource_type, id), cascade, limit, record)
        return await self._transaction(job)  # type: ignore[no-any-return]

    async def _expunge(self, session: AsyncClientSession, target: tuple[str, str],
                       cascade: bool, limit: int,
                       record: Recorder | None) -> list[tuple[str, str]]:
        db = self.db
        if await db[HISTORY].find_one({"type": target[0], "id": target[1]}, {"_id": 1},
                                      session=session) is None:
            return []
        erased, frontier = [target], [target]
        while frontier:  # the current resources that reference what is erased, in turn
            found = []
            for rtype, rid in frontier:
                found += [(d["type"], d["id"]) async for d in db[RESOURCES].find(
                    {"refs": f"{rtype}/{rid}", "deleted": False},
                    {"type": 1, "id": 1}, session=session)]
            found = [key for key in dict.fromkeys(found) if key not in erased]
            if found and not cascade:
                raise IntegrityError(referenced=[(*target, [f"{t}/{i}" for t, i in found])])
            frontier = found
            erased += found
            if len(erased) > limit:
                raise ExpungeTooLarge(limit)
        await self._erase(session, erased)
        if record is not None:
            await self._apply(session, record(erased), DEFAULT_OPTIONS)
        return erased

    async def _erase(self, session: AsyncClientSession,
                     keys: Sequence[tuple[str, str]]) -> None:
        """Remove resources with every version (index entries live in their documents)."""
        await self.db[RESOURCES].delete_many({"_id": {"$in": [f"{t}/{i}" for t, i in keys]}},
                                             session=session)
        for rtype, id in keys:
            await self.db[HISTORY].delete_many({"type": rtype, "id": id}, session=session)

    async def purge_chain(self, through_seq: int) -> int:
        async def job(session: AsyncClientSession) -> int:
            links = await self.db[CHAIN].find({"_id": {"$lte": through_seq}},
                                              session=session).to_list()
            await self._erase(session, [(link["type"], link["id"]) for link in links])
            await self.db[CHAIN].delete_many({"_id": {"$lte": through_seq}}, session=session)
            return len(links)
        return await self._transaction(job)  # type: ignore[no-any-return]

    # -- the server's records ----------------------------------------------------------

    async def put_record(self, kind: str, key: str, value: bytes,
                         expires_ms: int | None = None, only_new: bool = False) -> bool:
        async with translated():
            return await records.put_record(self.db, self.clock(), kind, key, value,
                                            expires_ms, only_new)

    async def get_record(self, kind: str, key: str) -> bytes | None:
        async with translated():
            return await records.get_record(self.db, self.clock(), kind, key)

    async def list_records(self, kind: str, prefix: str = "") -> list[Record]:
        async with translated():
            return await records.list_records(self.db, self.clock(), kind, prefix)

    async def record_values(self, kind: str, prefix: str) -> list[bytes]:
        async with translated():
            return await records.record_values(self.db, self.clock(), kind, prefix)

    async def change_records(self, changes: Sequence[RecordChange]) -> None:
        if not changes:
            return

        async def job(session: AsyncClientSession) -> None:
            await self.db[RECORDS].bulk_write(records.record_changes(changes), ordered=True,
                                              session=session)
        await self._transaction(job)

    async def delete_record(self, kind: str, key: str) -> bool:
        async with translated():
            return await records.delete_record(self.db, kind, key)


@dataclass(frozen=True, slots=True)
class PlainCommit:
    """A commit's writes, run as a transaction's job; those without conditions and with
    the same options merge with one another in a group."""

    storage: MongoStorage
    writes: Sequence[Write]
    options: CommitOptions
    conditions: Sequence[Condition]

    def joins(self, job: Job) -> bool:
        """Whether ``job`` may be applied together with this (mergeable) commit."""
        return isinstance(job, PlainCommit) and not job.conditions \
            and job.options == self.options

    async def __call__(self, session: AsyncClientSession,
                       ) -> tuple[list[StoredVersion], Commit]:
        for condition in self.conditions:  # inside the transaction, before the writes
            page = await self.storage._searcher(session).run(condition.query)
            found = [m.id for m in page.matches]
            if sorted(found) != sorted(condition.expected):
                raise ConditionChanged(condition, found)
        return await self.storage._apply(session, self.writes, self.options)


async def _attempt(session: AsyncClientSession,
                   job: Callable[[AsyncClientSession], Any]) -> Any:
    """One try of a transaction: committed, or aborted on any error (then raised)."""
    await session.start_transaction()
    try:
        result = await job(session)
    except BaseException:
        await session.abort_transaction()
        raise
    await session.commit_transaction()
    return result


def _conflict(error: OperationFailure) -> bool:
    """A write conflict between transactions: retried (with or without MongoDB's label)."""
    return error.code == WRITE_CONFLICT or error.has_error_label("TransientTransactionError")


def _history_page(found: list[dict[str, Any]], total: int, count: int) -> HistoryPage:
    entries = [HistoryEntry(d["_id"], _version(d), d["method"]) for d in found[:count]]
    return HistoryPage(entries, total, entries[-1].seq if len(found) > count else None)
