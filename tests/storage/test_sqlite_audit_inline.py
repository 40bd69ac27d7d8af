"""Audit records commit on the caller's thread when SQLite's write lock is free, and wait
for the writer thread when another connection (another worker) holds it: one chain either
way, nothing lost."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading

import orjson

from fhir_server.storage import sqlite as sqlite_module
from fhir_server.storage.port import Write
from fhir_server.storage.sqlite import SqliteStorage


def _link(id: str) -> Write:
    return Write("create", "AuditEvent", id, link=lambda version, ms, seq, previous: orjson.dumps(
        {"resourceType": "AuditEvent", "id": id, "seq": seq, "before": previous}))


def test_audit_records_inline_and_behind_a_held_write_lock(tmp_path):
    path = tmp_path / "audit.db"
    storage = SqliteStorage(f"sqlite:///{path}")
    threads: list[str] = []

    async def run() -> list[tuple[int, str]]:
        await storage.open()
        original = storage._apply

        def traced(conn, *args):  # which thread applied each commit
            threads.append(threading.current_thread().name)
            return original(conn, *args)
        storage._apply = traced  # type: ignore[method-assign]
        await storage.commit([_link("a"), _link("b")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker's write transaction
        waiting = asyncio.create_task(storage.commit([_link("c")]))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # queued for the writer, which waits for the lock
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(waiting, 10)
        links = [(link.seq, link.id) for link in await storage.chain(0, 10)]
        await storage.close()
        return links

    assert asyncio.run(run()) == [(1, "a"), (2, "b"), (3, "c")]
    assert threads == ["MainThread", "sqlite-writer"]
    with sqlite3.connect(path) as conn:
        second = orjson.loads(conn.execute(
            "SELECT h.content FROM history h WHERE h.id = 'c'").fetchone()[0])
        head = conn.execute("SELECT hash FROM audit_chain WHERE seq = 2").fetchone()[0]
    assert second["seq"] == 3 and second["before"] == head


def test_full_durability_commits_audit_records_on_the_writer(tmp_path):
    """With ``synchronous=FULL`` each commit waits for the disk: never on the event loop."""
    storage = SqliteStorage(f"sqlite:///{tmp_path / 'full.db'}", durability="full")
    threads: list[str] = []

    async def run() -> None:
        await storage.open()
        original = storage._apply

        def traced(conn, *args):
            threads.append(threading.current_thread().name)
            return original(conn, *args)
        storage._apply = traced  # type: ignore[method-assign]
        await storage.commit([_link("a")])
        await storage.close()

    asyncio.run(run())
    assert threads == ["sqlite-writer"]


def test_inline_commits_have_the_writer_checkpoint_the_wal(tmp_path, monkeypatch):
    """A read-only load writes only audit records, on the event loop's connection, which
    never checkpoints: the writer copies the WAL into the database every so often."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 3)
    path = tmp_path / "wal.db"
    storage = SqliteStorage(f"sqlite:///{path}")

    async def run() -> tuple[int, int]:
        await storage.open()
        before = os.path.getsize(path)
        for n in range(3):
            await storage.commit([_link(f"e{n}-{k}") for k in range(50)])
        await asyncio.sleep(0.3)
        after = os.path.getsize(path)
        await storage.close()
        return before, after

    before, after = asyncio.run(run())
    assert after > before  # pages copied from the WAL into the database file
