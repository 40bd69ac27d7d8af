"""SQLite adapter of the storage port: WAL, one writer thread with group commit, readers.

Writes from any number of requests queue up for the single writer thread, which applies all
that are waiting in one SQLite transaction (each in its own savepoint, so one failing commit
leaves the others intact) and commits once: one fsync carries many requests. Point reads
run inline on the caller's thread (a page-cache hit costs microseconds, less than a thread
hop); history and listings run on a small reader pool. With ``synchronous=NORMAL`` in WAL
an acknowledged write survives ``kill -9``; ``durability="full"`` also survives power loss.

A commit of the server's own audit records alone (new links of the audit chain) is applied
on the caller's thread when SQLite's write lock is free at once, else it queues for the
writer like any other: a hop to the writer thread and back costs two GIL handoffs with the
event loop, several times the few inserts themselves (see benchmarks/RESULTS.md, issue 15).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fhir_server.search.extract import IndexRows
from fhir_server.search.plan import TABLES, Query
from fhir_server.storage import sqlite_records as records
from fhir_server.storage.port import (
    DEFAULT_OPTIONS,
    MARK_STALE_SECONDS,
    AlreadyExists,
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
    Linker,
    Record,
    RecordChange,
    Recorder,
    Reference,
    ReindexRows,
    SearchPage,
    SearchTimeout,
    StorageError,
    StorageStats,
    StoredVersion,
    VersionConflict,
    Write,
)
from fhir_server.storage.sqlite_export import export_batch, snapshot_mark
from fhir_server.storage.sqlite_query import SearchRunner
from fhir_server.storage.sqlite_rows import insert_rows, select_keyed
from fhir_server.storage.sqlite_schema import migrate
from fhir_server.storage.sqlite_unique import check_unique

T = TypeVar("T")
log = logging.getLogger("fhir_server")
Job = tuple[Callable[[sqlite3.Connection], Any], "Future[Any]"]
PROGRESS_STEPS = 4_000  # SQLite VM steps between checks of a search's deadline
MAX_GROUP = 256  # commits merged into one SQLite transaction at most
INLINE_PATIENCE = 0.02  # seconds audit records wait for a free write lock, then the writer's
INLINE_POLL = 0.0005  # seconds between their tries
CHECKPOINT_EVERY = 1000  # inline commits between the writer's WAL checkpoints
ANALYZE_EVERY = 20_000  # commits between statistics refreshes
INSERT_ROWS = {table: f"INSERT OR IGNORE INTO idx_{table} (pid, {', '.join(columns)}, rid)"
               for table, columns in TABLES.items()}
DELETE_ROWS = {table: f"DELETE FROM idx_{table} WHERE pid = ? AND "
               + " AND ".join(f"{c} = ?" for c in columns) + " AND rid = ?"
               for table, columns in TABLES.items()}
# The highest seq and rid in use, or ever used before an erasure (never given out again).
LAST_NUMBERS = ("SELECT max(coalesce((SELECT max(seq) FROM history), 0), coalesce((SELECT "
                "CAST(value AS INTEGER) FROM settings WHERE key = 'seq-floor'), 0)), "
                "max(coalesce((SELECT max(rid) FROM resources), 0), coalesce((SELECT "
                "CAST(value AS INTEGER) FROM settings WHERE key = 'rid-floor'), 0))")
REFERRERS = ("SELECT f.src_type, f.src_id FROM refs f JOIN resources r ON r.type = f.src_type "
             "AND r.id = f.src_id AND r.deleted = 0 WHERE f.dst_type = ? AND f.dst_id = ?")
VERSION_COLUMNS = "h.type, h.id, h.version, h.last_updated, h.content IS NULL, h.content"


class RowBatch:
    """The rows of one commit, written table by table at its end. ``seq`` and ``rid`` count
    on from the highest in use (the writer holds the write lock, so they are free)."""

    def __init__(self, seq: int = 0, rid: int = 0) -> None:
        self.seq, self.rid = seq, rid
        self.history: list[tuple[Any, ...]] = []
        self.created: list[tuple[Any, ...]] = []
        self.updated: list[tuple[Any, ...]] = []
        self.unreferenced: list[tuple[str, str]] = []
        self.deletes: dict[str, list[tuple[Any, ...]]] = {}
        self.inserts: dict[str, list[tuple[Any, ...]]] = {}
        self.refs: list[tuple[str, str, str, str]] = []
        self.chain: list[tuple[int, str, str, str]] = []
        self.deferred: list[tuple[int]] = []
        self.head: tuple[int, str] | None = None

    def link(self, conn: sqlite3.Connection, key: tuple[str, str], linker: Linker,
             version: int, now: int) -> bytes:
        """A new link of the audit chain: rendered with its sequence and the previous
        link's hash, and its own hash kept."""
        seq, previous = self.head if self.head is not None else _chain_head(conn)
        content = linker(version, now, seq + 1, previous)
        self.head = (seq + 1, hashlib.sha256(content).hexdigest())
        self.chain.append((self.head[0], *key, self.head[1]))
        return content

    def flush(self, conn: sqlite3.Connection) -> None:
        insert_rows(conn, "INSERT INTO history (seq, type, id, version, last_updated, method, "
                    "content)", self.history)
        insert_rows(conn, "INSERT INTO resources (rid, type, id, seq, version, last_updated, "
                    "deleted)", self.created)
        conn.executemany("UPDATE resources SET seq = ?, version = ?, last_updated = ?, "
                         "deleted = ? WHERE rid = ?", self.updated)
        conn.executemany("DELETE FROM refs WHERE src_type = ? AND src_id = ?",
                         self.unreferenced)
        for table, rows in self.deletes.items():
            conn.executemany(DELETE_ROWS[table], rows)
        for table, rows in self.inserts.items():
            insert_rows(conn, INSERT_ROWS[table], rows)
        insert_rows(conn, "INSERT OR IGNORE INTO refs", self.refs)
        insert_rows(conn, "INSERT INTO audit_chain (seq, type, id, hash)", self.chain)
        insert_rows(conn, "INSERT OR IGNORE INTO deferred_index (rid)", self.deferred)


def _bytes(content: bytes | str | None) -> bytes:
    """Stored content as bytes (a row changed by hand may hold text)."""
    return content.encode() if isinstance(content, str) else content or b""


def _chain_head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, "")


def _clear_chunk(conn: sqlite3.Connection, size: int = 50_000) -> bool:
    """Delete up to ``size`` index rows of each table; whether any were left to delete."""
    deleted = 0
    for table, columns in TABLES.items():
        key = ", ".join(("pid", *columns, "rid"))
        deleted += conn.execute(f"DELETE FROM idx_{table} WHERE ({key}) IN "
                                f"(SELECT {key} FROM idx_{table} LIMIT ?)", (size,)).rowcount
    if not deleted:
        conn.execute("DELETE FROM token_counts")  # the triggers left zeros
    return deleted > 0


def _analyze(conn: sqlite3.Connection) -> None:
    """Refresh the planner's statistics from a sample (milliseconds, even at 1 M rows)."""
    conn.execute("PRAGMA analysis_limit=400")
    conn.execute("ANALYZE")


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a file path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return url[len("sqlite:///"):]


def _version(row: Sequence[Any]) -> StoredVersion:
    return StoredVersion(row[0], row[1], row[2], row[3], bool(row[4]), row[5] or b"")


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """Turn sqlite3 errors into port errors, at one border."""
    try:
        yield
    except sqlite3.Error as error:
        raise StorageError(f"sqlite: {error}") from error


class SqliteStorage:
    """The embedded default store; see the module docstring."""

    def __init__(self, url: str, durability: str = "normal", readers: int = 4,
                 clock: Callable[[], int] | None = None, search_timeout: float = 30.0) -> None:
        self.path = path_from_url(url)
        self.search_timeout = search_timeout
        self.synchronous = "FULL" if durability == "full" else "NORMAL"
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._last_ms = 0
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pids: dict[str, int] = {}
        self._secret = b""
        self.index_of: ReindexRows | None = None
        self._since_analyze = 0
        self._group_observer: GroupObserver | None = None
        self._mark = (0, -MARK_STALE_SECONDS)  # (data mark, when read: time.monotonic())
        self._written_mark: int | None = None  # the mark the open write transaction sets
        self._inline: sqlite3.Connection | None = None  # audit records on the caller's thread
        self._inline_commits = 0
        self._checkpoint_due = False  # set by inline commits, done by the writer

    # -- connections -------------------------------------------------------------------

    def _connect(self, mapped: bool = True) -> sqlite3.Connection:
        if not os.path.exists(self.path):  # health data: readable by the server's user only
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as error:
                raise StorageError(f"cannot create the database {self.path}: "
                                   f"{error.strerror}") from None
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               cached_statements=512)
        conn.execute("PRAGMA busy_timeout=10000")  # first: other workers may be migrating
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA cache_size={-65536 if mapped else -16384}")
        # 2 GiB, the usual build maximum (unmapped: reads go through the page cache)
        conn.execute(f"PRAGMA mmap_size={2147418112 if mapped else 0}")
        conn.execute("PRAGMA wal_autocheckpoint=16384")  # 64 MiB: fewer, larger checkpoints
        conn.execute("PRAGMA temp_store=MEMORY")
        with self._lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    async def _in_pool(self, job: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: job(self._reader()))

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        with _translate():
            conn = self._connect()
            migrated = migrate(conn)
            conn.execute("INSERT OR IGNORE INTO settings VALUES ('paging-secret', "
                         "hex(randomblob(32)))")
            self._secret = bytes.fromhex(conn.execute(
                "SELECT value FROM settings WHERE key = 'paging-secret'").fetchone()[0])
            if migrated or conn.execute("SELECT 1 FROM sqlite_master WHERE name = "
                                        "'sqlite_stat1'").fetchone() is None:
                _analyze(conn)  # new indexes need statistics before the first search
        self._writer = threading.Thread(target=self._write_loop, args=(conn,),
                                        name="sqlite-writer", daemon=True)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
            with _translate():
                _analyze(self._connect())
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._inline = None

    # -- reads -------------------------------------------------------------------------

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        return self.read_now(resource_type, id)

    def read_now(self, resource_type: str, id: str) -> StoredVersion | None:
        """The synchronous point read behind ``read`` (inline: see benchmarks/RESULTS.md)."""
        with _translate():
            row = self._reader().execute(
                f"SELECT {VERSION_COLUMNS} FROM resources r JOIN history h ON h.seq = r.seq "
                "WHERE r.type = ? AND r.id = ?", (resource_type, id)).fetchone()
        return _version(row) if row else None

    async def vread(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        with _translate():
            row = self._reader().execute(
                f"SELECT {VERSION_COLUMNS} FROM history h "
                "WHERE h.type = ? AND h.id = ? AND h.version = ?",
                (resource_type, id, version)).fetchone()
        return _version(row) if row else None

    async def history(self, query: HistoryQuery) -> HistoryPage:
        return await self._in_pool(lambda conn: self._history(conn, query))

    def _history(self, conn: sqlite3.Connection, query: HistoryQuery) -> HistoryPage:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if query.visible:  # the versions of the resources that now meet them
            checks, params = SearchRunner(conn, lambda key: self._pid(conn, key, False)
                                          ).checks(query.visible)
            where = ["EXISTS (SELECT 1 FROM resources r WHERE r.type = h.type AND "
                     f"r.id = h.id AND r.deleted = 0 AND {checks})"]
        if query.resource_type:
            where.append("h.type = ?")
            params.append(query.resource_type)
        if query.id:
            where.append("h.id = ?")
            params.append(query.id)
        if query.since_ms is not None:
            where.append("h.last_updated >= ?")
            params.append(query.since_ms)
        if query.at_ms is not None:
            where.append("h.last_updated <= ? AND NOT EXISTS (SELECT 1 FROM history n WHERE "
                         "n.type = h.type AND n.id = h.id AND n.version > h.version "
                         "AND n.last_updated <= ?)")
            params += [query.at_ms, query.at_ms]
        condition = " AND ".join(where)
        with _translate():
            total = conn.execute(f"SELECT count(*) FROM history h WHERE {condition}",
                                 params).fetchone()[0]
            page_condition, page_params = condition, list(params)
            if query.before_seq is not None:
                page_condition += " AND h.seq < ?"
                page_params.append(query.before_seq)
            rows = conn.execute(
                f"SELECT h.seq, h.method, {VERSION_COLUMNS} FROM history h "
                f"WHERE {page_condition} ORDER BY h.seq DESC LIMIT ?",
                [*page_params, query.count + 1]).fetchall()
        entries = [HistoryEntry(r[0], _version(r[2:]), r[1]) for r in rows[: query.count]]
        next_seq = entries[-1].seq if len(rows) > query.count else None
        return HistoryPage(entries, total, next_seq)

    async def search(self, query: Query) -> SearchPage:
        return await self._in_pool(lambda conn: self._search(conn, query))

    async def facts(self, query: Query, wanted: Sequence[Fact]) -> list[tuple[Any, ...]]:
        return await self._in_pool(lambda conn: self._guarded(
            conn, lambda runner: runner.facts(query, wanted)))

    def _search(self, conn: sqlite3.Connection, query: Query) -> SearchPage:
        return self._guarded(conn, lambda runner: runner.run(query))

    def _guarded(self, conn: sqlite3.Connection, job: Callable[[SearchRunner], T]) -> T:
        """A search job, interrupted by SQLite's progress handler past the deadline."""
        deadline = time.monotonic() + self.search_timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            return job(SearchRunner(conn, lambda key: self._pid(conn, key, False)))
        except sqlite3.OperationalError as error:
            if time.monotonic() > deadline:
                raise SearchTimeout(f"search stopped after {self.search_timeout:g} s") from None
            raise StorageError(f"sqlite: {error}") from error
        finally:
            conn.set_progress_handler(None, 0)

    def use_indexer(self, rows: ReindexRows) -> None:
        self.index_of = rows

    async def secret(self) -> bytes:
        return self._secret

    async def put_record(self, kind: str, key: str, value: bytes,
                         expires_ms: int | None = None, only_new: bool = False) -> bool:
        return await self._in_writer(lambda conn: records.put_record(
            conn, self.clock(), kind, key, value, expires_ms, only_new))

    async def get_record(self, kind: str, key: str) -> bytes | None:
        with _translate():
            return records.get_record(self._reader(), self.clock(), kind, key)

    async def list_records(self, kind: str, prefix: str = "") -> list[Record]:
        with _translate():
            return records.list_records(self._reader(), self.clock(), kind, prefix)

    async def record_values(self, kind: str, prefix: str) -> list[bytes]:
        with _translate():
            return records.record_values(self._reader(), self.clock(), kind, prefix)

    async def change_records(self, changes: Sequence[RecordChange]) -> None:
        await self._in_writer(lambda conn: records.change_records(conn, changes))

    async def delete_record(self, kind: str, key: str) -> bool:
        return await self._in_writer(lambda conn: records.delete_record(conn, kind, key))

    async def snapshot_mark(self) -> int:
        with _translate():
            return snapshot_mark(self._reader())

    async def export_batch(self, part: ExportSlice) -> tuple[list[bytes], int | None]:
        """On a connection of its own that reads through a bounded page cache instead of
        mapping the file: an export reads every page once, and mapped pages would count
        in the server's memory up to the database's size."""
        def run() -> tuple[list[bytes], int | None]:
            conn = getattr(self._local, "export", None)
            if conn is None:
                conn = self._local.export = self._connect(mapped=False)
            with _translate():
                return export_batch(SearchRunner(conn, lambda k: self._pid(conn, k, False)),
                                    part)
        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def pending_reindex(self) -> bool:
        row = self._reader().execute(
            "SELECT value FROM settings WHERE key = 'reindex'").fetchone()
        return bool(row and row[0] == "pending")

    async def ping(self) -> None:
        with _translate():
            await self._in_pool(lambda conn: conn.execute("SELECT 1").fetchone())

    def stats(self) -> StorageStats:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.stat(self.path + suffix).st_size
        return StorageStats(self._queue.qsize(), size)

    def observe_groups(self, observer: GroupObserver) -> None:
        self._group_observer = observer

    async def reindex_batch(self, after_rid: int, size: int,
                            rows: ReindexRows) -> tuple[int | None, int]:
        if after_rid == 0:  # the old rows go first, a chunk per transaction: one DELETE of
            while await self._in_writer(_clear_chunk):  # every row grew the WAL and the
                pass  # temporary store by gigabytes at 1 M resources
        return await self._in_writer(lambda conn: self._reindex(conn, after_rid, size, rows))

    async def index_deferred(self, size: int) -> int:
        return await self._in_writer(lambda conn: self._index_deferred(conn, size))

    def _index_deferred(self, conn: sqlite3.Connection, size: int) -> int:
        batch = conn.execute(
            "SELECT d.rid, h.content, r.deleted FROM deferred_index d "
            "LEFT JOIN resources r ON r.rid = d.rid LEFT JOIN history h ON h.seq = r.seq "
            "ORDER BY d.rid LIMIT ?", (size,)).fetchall()
        queued = RowBatch()
        for rid, content, deleted in batch:
            if content is not None and not deleted and self.index_of is not None:
                self._add_rows(conn, queued.inserts, rid, self.index_of(content))
        queued.flush(conn)
        conn.executemany("DELETE FROM deferred_index WHERE rid = ?", [(r[0],) for r in batch])
        return len(batch)

    async def _in_writer(self, job: Callable[[sqlite3.Connection], T]) -> T:
        future: Future[T] = Future()
        self._queue.put((job, future))
        return await asyncio.wrap_future(future)

    def _reindex(self, conn: sqlite3.Connection, after_rid: int, size: int,
                 rows: ReindexRows) -> tuple[int | None, int]:
        batch = conn.execute(
            "SELECT r.rid, h.content FROM resources r JOIN history h ON h.seq = r.seq "
            "WHERE r.rid > ? AND r.deleted = 0 ORDER BY r.rid LIMIT ?",
            (after_rid, size)).fetchall()
        queued = RowBatch()
        for rid, content in batch:
            self._add_rows(conn, queued.inserts, rid, rows(content))
        queued.flush(conn)
        if len(batch) < size:
            conn.execute("DELETE FROM settings WHERE key = 'reindex'")
            conn.execute("DELETE FROM deferred_index")  # every resource has its rows now
            return None, len(batch)
        return int(batch[-1][0]), len(batch)

    # -- writes ------------------------------------------------------------------------

    async def commit(self, writes: Sequence[Write], options: CommitOptions = DEFAULT_OPTIONS,
                     conditions: Sequence[Condition] = ()) -> list[StoredVersion]:
        if self._writer is None:
            raise StorageError("storage is not open")
        if self.synchronous == "NORMAL" and writes and not conditions and all(
                w.link is not None and w.kind == "create" for w in writes):
            deadline = time.monotonic() + INLINE_PATIENCE
            while (stored := self._apply_inline(writes, options)) is None \
                    and time.monotonic() < deadline:
                await asyncio.sleep(INLINE_POLL)  # (meanwhile the loop serves others)
            if stored is not None:
                return stored
        return await self._in_writer(lambda conn: self._apply(conn, writes, options, conditions))

    def _apply_inline(self, writes: Sequence[Write],
                      options: CommitOptions) -> list[StoredVersion] | None:
        """New audit records committed on this thread, or None when the write lock is held
        (by the writer thread, or another process): the caller tries again a few times,
        then queues them for the writer (whose wait for a lock sleeps in steps of
        milliseconds). Only with ``synchronous=NORMAL`` (no fsync on commit: the event loop
        never waits for the disk). This connection never checkpoints; every
        ``CHECKPOINT_EVERY`` commits it asks the writer to."""
        conn = self._inline
        if conn is None:
            with _translate():
                conn = self._inline = self._connect()
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute("PRAGMA wal_autocheckpoint=0")
        with _translate():
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    return None  # the lock is someone else's
                raise
            try:
                stored = self._apply(conn, writes, options, ())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if self._group_observer is not None:
            self._group_observer(1)
        self._inline_commits += 1
        if self._inline_commits % CHECKPOINT_EVERY == 0:  # a read-only load writes only
            self._checkpoint_due = True  # audit records: the WAL would grow without end
            self._queue.put((lambda conn: None, Future()))  # (wakes the writer)
        return stored

    async def expunge(self, resource_type: str, id: str, cascade: bool = False,
                      limit: int = 1000, record: Recorder | None = None,
                      ) -> list[tuple[str, str]]:
        if self._writer is None:
            raise StorageError("storage is not open")
        return await self._in_writer(lambda conn: self._expunge(conn, (resource_type, id),
                                                                cascade, limit, record))

    def _expunge(self, conn: sqlite3.Connection, target: tuple[str, str], cascade: bool,
                 limit: int, record: Recorder | None) -> list[tuple[str, str]]:
        if conn.execute("SELECT 1 FROM history WHERE type = ? AND id = ? LIMIT 1",
                        target).fetchone() is None:
            return []
        erased, frontier = [target], [target]
        while frontier:  # the current resources that reference what is erased, in turn
            found = [r for key in frontier for r in conn.execute(REFERRERS, key).fetchall()
                     if r not in erased]
            if found and not cascade:
                raise IntegrityError(referenced=[(*target, [f"{t}/{i}" for t, i in found])])
            frontier = list(dict.fromkeys(found))
            erased += frontier
            if len(erased) > limit:
                raise ExpungeTooLarge(limit)
        self._erase(conn, erased)
        if record is not None:
            self._apply(conn, record(erased), DEFAULT_OPTIONS, ())
        return erased

    def _erase(self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> None:
        """Remove resources with every version, index row and reference."""
        batch = RowBatch()
        for key in keys:
            row = conn.execute("SELECT r.rid, r.deleted, h.content FROM resources r JOIN "
                               "history h ON h.seq = r.seq WHERE r.type = ? AND r.id = ?",
                               key).fetchone()
            if row is not None and not row[1] and self.index_of is not None:
                self._add_rows(conn, batch.deletes, row[0], self.index_of(row[2]))
        batch.flush(conn)  # only the index rows of the current versions: the deletes
        seq, rid = conn.execute(LAST_NUMBERS).fetchone()  # not to be reused: cursors, rows
        conn.executemany("INSERT OR REPLACE INTO settings VALUES (?, ?)",
                         [("seq-floor", seq), ("rid-floor", rid)])
        conn.executemany("DELETE FROM refs WHERE src_type = ? AND src_id = ?", keys)
        conn.executemany("DELETE FROM resources WHERE type = ? AND id = ?", keys)
        conn.executemany("DELETE FROM history WHERE type = ? AND id = ?", keys)

    async def data_mark(self) -> int:
        """Kept in memory: set by this process's writer as it commits, read again from the
        database (inline, as a point read) when older than MARK_STALE_SECONDS. A query on
        every request cost more than the read it guarded: each statement of the event
        loop's thread waits for the GIL while the writer holds it."""
        mark, at = self._mark
        now = time.monotonic()
        if now - at < MARK_STALE_SECONDS:
            return mark
        with _translate():
            row = self._reader().execute(
                "SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'data-seq'").fetchone()
        mark = int(row[0]) if row else 0
        if self._mark[1] < now:  # unless the writer set a newer one meanwhile
            self._mark = (mark, now)
        return mark

    async def chain(self, after_seq: int, size: int) -> list[ChainLink]:
        def run(conn: sqlite3.Connection) -> list[ChainLink]:
            rows = conn.execute(
                "SELECT c.seq, c.type, c.id, c.hash, h.content FROM audit_chain c "
                "LEFT JOIN resources r ON r.type = c.type AND r.id = c.id "
                "LEFT JOIN history h ON h.seq = r.seq WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                (after_seq, size)).fetchall()
            return [ChainLink(row[0], row[1], row[2], row[3], _bytes(row[4])) for row in rows]
        with _translate():
            return await self._in_pool(run)

    async def continue_chain(self, seq: int, hash: str) -> None:
        """A link row of no resource stands for the purged ones (verify skips it: it is at
        the anchor's place)."""
        def run(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("INSERT INTO audit_chain (seq, type, id, hash) VALUES (?, '', '', ?)",
                             (seq, hash))
        with _translate():
            await self._in_pool(run)

    async def versions(self, after_seq: int, size: int) -> list[HistoryEntry]:
        def run(conn: sqlite3.Connection) -> list[HistoryEntry]:
            rows = conn.execute(f"SELECT h.seq, h.method, {VERSION_COLUMNS} FROM history h "
                                "WHERE h.seq > ? ORDER BY h.seq LIMIT ?",
                                (after_seq, size)).fetchall()
            return [HistoryEntry(r[0], _version(r[2:]), r[1]) for r in rows]
        with _translate():
            return await self._in_pool(run)

    async def purge_chain(self, through_seq: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            keys = conn.execute("SELECT type, id FROM audit_chain WHERE seq <= ?",
                                (through_seq,)).fetchall()
            self._erase(conn, [tuple(k) for k in keys])
            conn.execute("DELETE FROM audit_chain WHERE seq <= ?", (through_seq,))
            return len(keys)
        return await self._in_writer(run)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            group = self._next_group()
            if not group:
                return
            self._run_group(conn, group)
            self._since_analyze += len(group)
            del group  # else the last group's writes and results live on while idle
            if self._checkpoint_due:
                self._checkpoint_due = False
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # the next one catches up
                    log.warning("checkpointing the SQLite WAL failed", exc_info=True)
            if self._since_analyze >= ANALYZE_EVERY:
                self._since_analyze = 0
                try:
                    _analyze(conn)
                except sqlite3.Error:  # statistics are an optimisation: never stop the writer
                    log.warning("refreshing SQLite statistics failed", exc_info=True)

    def _next_group(self) -> list[Job]:
        """The commits waiting (at least one: blocks until it comes), or [] at shutdown.

        A commit whose caller was cancelled before it started is dropped; the others are
        marked running, so that a late cancel cannot meet their answer."""
        group: list[Job] = []
        while not group:
            first = self._queue.get()
            if first is None:
                return []
            if first[1].set_running_or_notify_cancel():
                group.append(first)
        while len(group) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            if item[1].set_running_or_notify_cancel():
                group.append(item)
        return group

    def _run_group(self, conn: sqlite3.Connection, group: list[Job]) -> None:
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        nested = len(group) > 1  # a lone commit's failure may undo the whole transaction
        self._written_mark = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future in group:
                if nested:
                    conn.execute("SAVEPOINT job")
                mark = self._written_mark
                try:
                    outcomes.append((future, job(conn), None))
                    if nested:
                        conn.execute("RELEASE job")
                except Exception as error:
                    self._written_mark = mark  # (its data mark was undone with it)
                    for undo in ("ROLLBACK TO job", "RELEASE job") if nested else ("ROLLBACK",):
                        conn.execute(undo)
                    outcomes.append((future, None, error))
            if conn.in_transaction:
                conn.execute("COMMIT")
                if self._written_mark is not None:  # (before the commits are answered)
                    self._mark = (self._written_mark, time.monotonic())
        except sqlite3.Error as fault:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StorageError(f"sqlite: {fault}")
            outcomes = [(future, None, failure) for _, future in group]
        if self._group_observer is not None:  # before the commits are answered
            self._group_observer(len(group))
        for future, result, problem in outcomes:
            if problem is None:
                future.set_result(result)
            else:
                future.set_exception(problem)

    def _now(self) -> int:
        self._last_ms = max(self.clock(), self._last_ms)
        return self._last_ms

    def _apply(self, conn: sqlite3.Connection, writes: Sequence[Write],
               options: CommitOptions, conditions: Sequence[Condition]) -> list[StoredVersion]:
        """One commit: its conditions are searched on the writer's connection (inside the
        write transaction: no other commit, of any process, runs between them and the
        writes); rows are gathered first and written table by table (few statements:
        each statement re-takes the GIL, which the event loop may be holding)."""
        for condition in conditions:
            page = SearchRunner(conn, lambda key: self._pid(conn, key, False)).run(
                condition.query)
            found = [m.id for m in page.matches]
            if sorted(found) != sorted(condition.expected):
                raise ConditionChanged(condition, found)
        now = self._now()
        current = self._current(conn, writes)
        batch = RowBatch(*conn.execute(LAST_NUMBERS).fetchone())
        results = [self._apply_one(conn, write, now, batch,
                                   current.get((write.resource_type, write.id)))
                   for write in writes]
        batch.flush(conn)
        if any(w.link is None for w in writes):
            conn.execute("INSERT OR REPLACE INTO settings VALUES ('data-seq', ?)", (batch.seq,))
            self._written_mark = batch.seq
        check_unique(conn, writes, lambda key: self._pid(conn, key, create=False))
        self._check_integrity(conn, writes, options)
        records.change_records(conn, [c for w in writes for c in w.records])
        return results

    @staticmethod
    def _current(conn: sqlite3.Connection, writes: Sequence[Write]) -> dict[tuple[str, str],
                                                                            tuple[Any, ...]]:
        """The current rows of the written resources, in one statement: the keys as a
        ``VALUES`` table driving indexed (type, id) lookups (a row-value ``IN`` would not use
        the index)."""
        keys = list(dict.fromkeys((w.resource_type, w.id) for w in writes))
        rows = select_keyed(conn, "SELECT r.type, r.id, r.version, r.deleted, r.last_updated, "
                            "r.rid, r.seq FROM k CROSS JOIN resources r "
                            "ON r.type = k.k0 AND r.id = k.k1", keys)
        return {(row[0], row[1]): row[2:] for row in rows}

    def _apply_one(self, conn: sqlite3.Connection, write: Write, now: int,
                   batch: RowBatch, row: tuple[Any, ...] | None) -> StoredVersion:
        key = (write.resource_type, write.id)
        now = now if write.updated_ms is None else write.updated_ms
        current, deleted = (row[0], bool(row[1])) if row else (0, True)
        if write.if_match is not None and (deleted or current != write.if_match):
            raise VersionConflict(*key, write.if_match, None if deleted else current)
        if write.kind == "create" and row is not None:
            raise AlreadyExists(*key)
        if write.kind == "delete" and deleted:
            return StoredVersion(*key, current, row[2] if row else 0, True, b"")
        old = None
        if row is not None and not deleted:
            old = conn.execute("SELECT content FROM history WHERE seq = ?", (row[4],)
                               ).fetchone()[0]
            if write.skip_unchanged and write.render is not None \
                    and write.render(current, row[2]) == old:  # the same bytes: no version
                return StoredVersion(*key, current, row[2], False, old)
        version = current + 1
        content: bytes | None = None
        if write.link is not None:
            content = batch.link(conn, key, write.link, version, now)
        elif write.kind != "delete":
            content = write.render(version, now)  # type: ignore[misc]
        method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[write.kind]
        batch.seq += 1
        batch.history.append((batch.seq, *key, version, now, method, content))
        if row is None:
            batch.rid += 1
            rid = batch.rid
            batch.created.append((rid, *key, batch.seq, version, now, content is None))
        else:
            rid = row[3]
            batch.updated.append((batch.seq, version, now, content is None, rid))
            batch.unreferenced.append(key)
            if old is not None and self.index_of is not None:
                self._add_rows(conn, batch.deletes, rid, self.index_of(old))
        batch.refs += [(*key, ref.resource_type, ref.id) for ref in write.references]
        if content is not None and write.index_later:
            batch.deferred.append((rid,))
        elif content is not None and write.index:
            self._add_rows(conn, batch.inserts, rid, write.index)
        return StoredVersion(*key, version, now, content is None, content or b"",
                             created=deleted and content is not None)

    def _add_rows(self, conn: sqlite3.Connection, into: dict[str, list[tuple[Any, ...]]],
                  rid: int, rows: IndexRows) -> None:
        """Queue one resource's index rows (as statement parameters) per table."""
        for table, entries in rows.items():
            into.setdefault(table, []).extend(
                (self._pid(conn, key), *values, rid) for key, values in entries)

    def _pid(self, conn: sqlite3.Connection, key: str, create: bool = True) -> int:
        """The integer id of an index key (made on first write; -1 if unknown on read)."""
        pid = self._pids.get(key)
        if pid is None:
            if create:
                conn.execute("INSERT OR IGNORE INTO search_params (key) VALUES (?)", (key,))
            row = conn.execute("SELECT pid FROM search_params WHERE key = ?", (key,)).fetchone()
            if row is None:
                return -1
            pid = self._pids[key] = row[0]
        return pid

    @staticmethod
    def _check_integrity(conn: sqlite3.Connection, writes: Sequence[Write],
                         options: CommitOptions) -> None:
        dangling: list[Reference] = []
        if options.check_references:
            targets: dict[tuple[str, str], Reference] = {}
            for write in writes:
                for ref in write.references:
                    targets.setdefault((ref.resource_type, ref.id), ref)
            missing = set(select_keyed(conn, "SELECT k.k0, k.k1 FROM k LEFT JOIN resources r "
                                       "ON r.type = k.k0 AND r.id = k.k1 "
                                       "WHERE r.rid IS NULL OR r.deleted", list(targets)))
            dangling = [ref for key, ref in targets.items() if key in missing]
        referenced = []
        if not options.allow_referenced_delete:
            for write in writes:
                if write.kind != "delete":
                    continue
                rows = conn.execute(
                    "SELECT f.src_type || '/' || f.src_id FROM refs f JOIN resources r "
                    "ON r.type = f.src_type AND r.id = f.src_id AND r.deleted = 0 "
                    "WHERE f.dst_type = ? AND f.dst_id = ? LIMIT 10",
                    (write.resource_type, write.id)).fetchall()
                if rows:
                    referenced.append((write.resource_type, write.id, [r[0] for r in rows]))
        if dangling or referenced:
            raise IntegrityError(dangling, referenced)
