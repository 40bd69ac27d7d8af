"""SQLite schema and its migrations, applied in order by ``migrate``.

``history`` holds every version's canonical bytes once; ``resources`` maps each (type, id)
to its current version's row; ``refs`` holds outgoing relative references for referential
integrity. Timestamps are epoch milliseconds.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        method TEXT NOT NULL,
        content BLOB
    );
    CREATE UNIQUE INDEX history_by_id ON history (type, id, version);
    CREATE INDEX history_by_type ON history (type, seq);
    CREATE INDEX history_by_time ON history (last_updated);
    CREATE TABLE resources (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        version INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID;
    CREATE TABLE refs (
        src_type TEXT NOT NULL,
        src_id TEXT NOT NULL,
        dst_type TEXT NOT NULL,
        dst_id TEXT NOT NULL,
        PRIMARY KEY (src_type, src_id, dst_type, dst_id)
    ) WITHOUT ROWID;
    CREATE INDEX refs_by_target ON refs (dst_type, dst_id);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return that version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN IMMEDIATE; {script}; "
                           f"INSERT INTO schema_version VALUES ({number}); COMMIT;")
    return len(MIGRATIONS)
