"""$reindex on SQLite clears the old index rows a chunk per transaction, then rebuilds."""

from __future__ import annotations

import asyncio
import sqlite3

from fhir_server.storage.port import Write
from fhir_server.storage.sqlite import SqliteStorage, _clear_chunk


def test_old_rows_are_cleared_in_chunks_and_rebuilt(tmp_path):
    path = tmp_path / "reindex.db"
    storage = SqliteStorage(f"sqlite:///{path}")

    def rows(content: bytes) -> dict:
        return {"token": [("Patient.gender", ("", content.decode()))],
                "string": [("Patient.name", ("li", "Li"))]}

    async def run() -> int:
        await storage.open()
        storage.use_indexer(rows)
        await storage.commit([Write("update", "Patient", f"p{n}", lambda v, ms: b"male",
                                    None, (), rows(b"male")) for n in range(7)])
        done, after = 0, 0
        while True:
            last, count = await storage.reindex_batch(after, 3, rows)
            done += count
            if last is None:
                break
            after = last
        await storage.close()
        return done

    assert asyncio.run(run()) == 7
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM idx_token").fetchone()[0] == 7
        assert conn.execute("SELECT n FROM token_counts").fetchall() == [(7,)]
        chunks = 0
        while _clear_chunk(conn, size=3):
            chunks += 1
        assert chunks == 3  # 7 token and 7 string rows, three at a time per table
        assert conn.execute("SELECT count(*) FROM idx_string").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM token_counts").fetchone()[0] == 0
