"""Unique identifiers on SQLite: checked inside the writing transaction, after the commit's
index rows are in place, so two writers (or two entries of one Bundle) can never both take
the same resident ID or unified social credit code."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from fhir_server.storage.port import DuplicateIdentifier, Write

OTHER_HOLDER = ("SELECT r.type, r.id FROM idx_token t JOIN resources r ON r.rid = t.rid "
                "WHERE t.pid = ? AND t.code = ? AND t.system = ? AND r.deleted = 0 "
                "AND NOT (r.type = ? AND r.id = ?) LIMIT 1")


def check_unique(conn: sqlite3.Connection, writes: Sequence[Write],
                 pid: Callable[[str], int]) -> None:
    """Raise DuplicateIdentifier when a written resource shares a unique identifier with
    another current resource of its type."""
    for write in writes:
        if not write.unique or write.kind == "delete":
            continue
        key = pid(f"{write.resource_type}.identifier")
        for system, value in write.unique:
            holder = conn.execute(OTHER_HOLDER, (key, value, system, write.resource_type,
                                                 write.id)).fetchone()
            if holder is not None:
                raise DuplicateIdentifier(write.resource_type, write.id, system, value,
                                          f"{holder[0]}/{holder[1]}")
