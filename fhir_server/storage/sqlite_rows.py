"""Many rows per SQLite statement.

Every statement step releases the GIL and must take it back; while the event loop is busy
parsing and validating requests, that wait (not SQLite's own work) dominated the writer
thread: a point lookup cost ~85 µs of waiting for ~5 µs of work. So the writer inserts
and looks up a commit's rows with one multi-row ``VALUES`` statement per table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

MAX_PARAMETERS = 30_000  # below SQLITE_MAX_VARIABLE_NUMBER (32,766 since SQLite 3.32)


def _chunks(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """``(VALUES placeholders, flat parameters)`` for runs of rows that fit one statement."""
    width = len(rows[0])
    step = max(1, MAX_PARAMETERS // width)
    row = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        yield ", ".join([row] * len(part)), [value for r in part for value in r]


def insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]]) -> None:
    """``head VALUES (…), (…)…``: e.g. ``head = "INSERT INTO t (a, b)"``."""
    if rows:
        for values, parameters in _chunks(rows):
            conn.execute(f"{head} VALUES {values}", parameters)


def select_keyed(conn: sqlite3.Connection, query: str,
                 keys: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Run ``query`` once per chunk with ``keys`` as the table ``k`` (columns k0, k1, …)."""
    if not keys:
        return []
    columns = ", ".join(f"k{i}" for i in range(len(keys[0])))
    found: list[tuple[Any, ...]] = []
    for values, parameters in _chunks(keys):
        found += conn.execute(f"WITH k({columns}) AS (VALUES {values}) {query}",
                              parameters).fetchall()
    return found
