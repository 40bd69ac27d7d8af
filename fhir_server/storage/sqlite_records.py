"""The server's own records in SQLite (table ``records``): clients, keys, replay guards,
export jobs. Writes run on the writer connection, inside its transaction."""

from __future__ import annotations

import sqlite3

from fhir_server.storage.port import Record

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


def list_records(conn: sqlite3.Connection, now: int, kind: str) -> list[Record]:
    rows = conn.execute(f"SELECT key, value, expires FROM records WHERE kind = ? AND {LIVE} "
                        "ORDER BY key", (kind, now)).fetchall()
    return [Record(key, bytes(value), expires) for key, value, expires in rows]


def delete_record(conn: sqlite3.Connection, kind: str, key: str) -> bool:
    return conn.execute("DELETE FROM records WHERE kind = ? AND key = ?",
                        (kind, key)).rowcount > 0
