"""Bulk export reads in SQLite: each resource's version as it was at a mark (the highest
``history.seq`` committed when the export started), walked in ``rid`` order.

A resource unchanged since the mark (nearly all) is read through ``resources.seq``; one
changed since is read from the newest history row at or before the mark; one created
since has none and is skipped, as is one deleted at the mark (no content)."""

from __future__ import annotations

import sqlite3

from fhir_server.storage.port import ExportSlice
from fhir_server.storage.sqlite_query import SearchRunner

AT_MARK = ("CASE WHEN r.seq <= ? THEN r.seq ELSE (SELECT max(x.seq) FROM history x "
           "WHERE x.type = r.type AND x.id = r.id AND x.seq <= ?) END")


def snapshot_mark(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM history").fetchone()[0])


def export_batch(runner: SearchRunner, part: ExportSlice) -> tuple[list[bytes], int | None]:
    where, params = runner.checks(part.where)
    if part.since_ms is not None:
        where += " AND h.last_updated > ?"
        params.append(part.since_ms)
    rows = runner.conn.execute(
        f"SELECT r.rid, h.content FROM resources r JOIN history h ON h.seq = {AT_MARK} "
        f"WHERE r.type = ? AND r.rid > ? AND h.content IS NOT NULL AND {where} "
        "ORDER BY r.rid LIMIT ?",
        [part.mark, part.mark, part.resource_type, part.after, *params, part.size]).fetchall()
    last = int(rows[-1][0]) if len(rows) == part.size else None
    return [row[1] for row in rows], last
