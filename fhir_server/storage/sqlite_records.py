"""The server's own records in SQLite (table ``records``): clients, keys, replay guards,
export jobs. Writes run on the writer connection, inside its transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from fhir_server.storage.port import Record, RecordChange, after_prefix

LIVE = "(expires IS NULL OR expires > ?)"


def put_record(conn: sqlite3.Connection, now: int, kind: str, key: str, value: bytes,
               expires_ms: int | None, only_new: bool) -> bool:
    """Keep a record; with ``only_new``, only if no live one holds the key. Expired
    records of the kind are removed first (the ones a guard needs gone, and the rest)."""
    conn.execute("DELETE FROM records WHERE kind = ? AND expires <= ?", (kind, now))
    verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
    return conn.execute(f"{verb} INTO records VALUES (?, ?, ?, ?)",
                        (kind, key, value, expires_ms)).rowcount > 0


def get_record(conn: sqlite3.Connection, now: int, kind: str, key: str) -> bytes | None:
    row = conn.execute(f"SELECT value FROM records WHERE kind = ? AND key = ? AND {LIVE}",
                       (kind, key, now)).fetchone()
    return bytes(row[0]) if row else None


def list_records(conn: sqlite3.Connection, now: int, kind: str, prefix: str) -> list[Record]:
    return [Record(key, bytes(value), expires)
            for key, value, expires in _listed(conn, now, kind, prefix, "key, value, expires")]


def record_values(conn: sqlite3.Connection, now: int, kind: str, prefix: str) -> list[bytes]:
    return [value for value, in _listed(conn, now, kind, prefix, "value")]


def _listed(conn: sqlite3.Connection, now: int, kind: str, prefix: str,
            columns: str) -> list[Any]:
    return conn.execute(f"SELECT {columns} FROM records WHERE kind = ? AND key >= ? "
                        f"AND key < ? AND {LIVE} ORDER BY key",
                        (kind, prefix, after_prefix(prefix), now)).fetchall()


def change_records(conn: sqlite3.Connection, changes: Sequence[RecordChange]) -> None:
    """Keep (without expiry) or remove records: the ones a commit's writes carry."""
    conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, NULL)",
                     [(c.kind, c.key, c.value) for c in changes if c.value is not None])
    conn.executemany("DELETE FROM records WHERE kind = ? AND key = ?",
                     [(c.kind, c.key) for c in changes if c.value is None])


def delete_record(conn: sqlite3.Connection, kind: str, key: str) -> bool:
    return conn.execute("DELETE FROM records WHERE kind = ? AND key = ?",
                        (kind, key)).rowcount > 0
