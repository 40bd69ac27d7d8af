"""SQLite schema and its migrations, applied in order by ``migrate``.

``history`` holds every version's canonical bytes once; ``resources`` maps each (type, id)
to its current version's row and gives it a stable integer ``rid``; ``refs`` holds outgoing
relative references for referential integrity; ``idx_<table>`` hold the search index rows
of current versions (``search/plan.TABLES`` names their columns), keyed by ``pid`` from
``search_params``; ``token_counts`` counts the resources per token value (triggers on
``idx_token``). Timestamps are epoch milliseconds. Migration 2 marks existing data for
reindexing (``settings.reindex = pending``).
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
    """
    CREATE TABLE resources_new (
        rid INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        version INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        deleted INTEGER NOT NULL
    );
    INSERT INTO resources_new (type, id, seq, version, last_updated, deleted)
        SELECT type, id, seq, version, last_updated, deleted FROM resources;
    DROP TABLE resources;
    ALTER TABLE resources_new RENAME TO resources;
    CREATE UNIQUE INDEX resources_by_id ON resources (type, id);
    CREATE INDEX resources_by_updated ON resources (type, last_updated);
    CREATE TABLE search_params (pid INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO settings SELECT 'reindex', 'pending' WHERE EXISTS (SELECT 1 FROM resources);
    CREATE TABLE idx_token (
        pid INTEGER NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, system, code)) WITHOUT ROWID;
    CREATE INDEX idx_token_search ON idx_token (pid, code, system, rid);
    CREATE TABLE idx_string (
        pid INTEGER NOT NULL, norm TEXT NOT NULL, exact TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, norm, exact)) WITHOUT ROWID;
    CREATE INDEX idx_string_search ON idx_string (pid, norm, rid);
    CREATE TABLE idx_reference (
        pid INTEGER NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL,
        url TEXT NOT NULL, version TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, target_type, target_id, url, version)) WITHOUT ROWID;
    CREATE INDEX idx_reference_search ON idx_reference (pid, target_id, target_type, rid);
    CREATE INDEX idx_reference_url ON idx_reference (pid, url, rid) WHERE url != '';
    CREATE TABLE idx_date (
        pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, low, high)) WITHOUT ROWID;
    CREATE INDEX idx_date_search ON idx_date (pid, low, high, rid);
    CREATE TABLE idx_number (
        pid INTEGER NOT NULL, value REAL NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, value)) WITHOUT ROWID;
    CREATE INDEX idx_number_search ON idx_number (pid, value, rid);
    CREATE TABLE idx_quantity (
        pid INTEGER NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, value REAL NOT NULL,
        rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, system, code, value)) WITHOUT ROWID;
    CREATE INDEX idx_quantity_search ON idx_quantity (pid, code, value, rid);
    CREATE TABLE idx_uri (
        pid INTEGER NOT NULL, uri TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid, uri)) WITHOUT ROWID;
    CREATE INDEX idx_uri_search ON idx_uri (pid, uri, rid);
    CREATE TABLE idx_composite (
        pid INTEGER NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, v_system TEXT,
        v_code TEXT, v_low, v_high, v_text TEXT, rid INTEGER NOT NULL);
    CREATE INDEX idx_composite_search ON idx_composite (pid, code, v_code, rid);
    CREATE INDEX idx_composite_rid ON idx_composite (rid);
    CREATE TABLE idx_sort (
        pid INTEGER NOT NULL, value NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (rid, pid)) WITHOUT ROWID;
    CREATE INDEX idx_sort_search ON idx_sort (pid, value, rid);
    """,
    # 3: one B-tree per index table, ordered for search; a row is removed by its full key,
    # recomputed from the version it indexed (only idx_reference and idx_sort keep a rid
    # index, for _include and sorting).
    """
    DROP TABLE idx_token; DROP TABLE idx_string; DROP TABLE idx_reference;
    DROP TABLE idx_date; DROP TABLE idx_number; DROP TABLE idx_quantity; DROP TABLE idx_uri;
    DROP TABLE idx_composite; DROP TABLE idx_sort;
    INSERT OR REPLACE INTO settings SELECT 'reindex', 'pending'
        WHERE EXISTS (SELECT 1 FROM resources);
    CREATE TABLE idx_token (pid INTEGER NOT NULL, code TEXT NOT NULL, system TEXT NOT NULL,
        rid INTEGER NOT NULL, PRIMARY KEY (pid, code, system, rid)) WITHOUT ROWID;
    CREATE TABLE idx_string (pid INTEGER NOT NULL, norm TEXT NOT NULL, exact TEXT NOT NULL,
        rid INTEGER NOT NULL, PRIMARY KEY (pid, norm, exact, rid)) WITHOUT ROWID;
    CREATE TABLE idx_reference (pid INTEGER NOT NULL, target_id TEXT NOT NULL,
        target_type TEXT NOT NULL, url TEXT NOT NULL, version TEXT NOT NULL,
        rid INTEGER NOT NULL,
        PRIMARY KEY (pid, target_id, target_type, url, version, rid)) WITHOUT ROWID;
    CREATE INDEX idx_reference_rid ON idx_reference (rid, pid);
    CREATE INDEX idx_reference_url ON idx_reference (pid, url, rid) WHERE url != '';
    CREATE TABLE idx_date (pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL,
        rid INTEGER NOT NULL, PRIMARY KEY (pid, low, high, rid)) WITHOUT ROWID;
    CREATE TABLE idx_number (pid INTEGER NOT NULL, value REAL NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (pid, value, rid)) WITHOUT ROWID;
    CREATE TABLE idx_quantity (pid INTEGER NOT NULL, code TEXT NOT NULL, value REAL NOT NULL,
        system TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (pid, code, value, system, rid)) WITHOUT ROWID;
    CREATE TABLE idx_uri (pid INTEGER NOT NULL, uri TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (pid, uri, rid)) WITHOUT ROWID;
    CREATE TABLE idx_composite (pid INTEGER NOT NULL, code TEXT NOT NULL,
        v_code TEXT NOT NULL, system TEXT NOT NULL, v_system TEXT NOT NULL, v_low NOT NULL,
        v_high NOT NULL, v_text TEXT NOT NULL, rid INTEGER NOT NULL,
        PRIMARY KEY (pid, code, v_code, system, v_system, v_low, v_high, v_text, rid))
        WITHOUT ROWID;
    CREATE TABLE idx_sort (rid INTEGER NOT NULL, pid INTEGER NOT NULL, value NOT NULL,
        PRIMARY KEY (rid, pid)) WITHOUT ROWID;
    CREATE INDEX idx_sort_search ON idx_sort (pid, value, rid);
    """,
    # 4: dates by resource, so an open date range can be checked for the few matches of
    # another criterion instead of listing every date in the range
    """
    CREATE INDEX idx_date_rid ON idx_date (rid, pid);
    """,
    # 5: bare codes are indexed with the system their required binding implies
    """
    INSERT OR REPLACE INTO settings SELECT 'reindex', 'pending'
        WHERE EXISTS (SELECT 1 FROM resources);
    """,
    # 6: resources per token value, kept by triggers in the writing transaction, so
    # ``_total=accurate`` on one code is one lookup instead of a count over every match
    """
    CREATE TABLE token_counts (pid INTEGER NOT NULL, code TEXT NOT NULL,
        system TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (pid, code, system)) WITHOUT ROWID;
    INSERT INTO token_counts SELECT pid, code, system, count(*) FROM idx_token
        GROUP BY pid, code, system;
    CREATE TRIGGER idx_token_added AFTER INSERT ON idx_token BEGIN
        INSERT INTO token_counts VALUES (new.pid, new.code, new.system, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER idx_token_removed AFTER DELETE ON idx_token BEGIN
        UPDATE token_counts SET n = n - 1
            WHERE pid = old.pid AND code = old.code AND system = old.system;
    END;
    """,
    # 7: a type's resources in rid order (an index on type holds its rowid), so a search
    # without criteria walks its page instead of sorting every resource of the type
    """
    CREATE INDEX resources_by_type ON resources (type);
    """,
    # 8: quantities by resource, so a unitless range (value-quantity=gt7) can be checked
    # for the matches of another criterion instead of reading every quantity
    """
    CREATE INDEX idx_quantity_rid ON idx_quantity (rid, pid);
    """,
    # 9: string rows by first character, in rid order, so a one-character prefix
    # (Patient?name=王) walks its page instead of listing every match
    """
    CREATE INDEX idx_string_head ON idx_string (pid, substr(norm, 1, 1), rid);
    """,
    # 10: strings have sort rows (their first value's first form), so _sort=name walks the
    # sort index instead of ordering every patient
    """
    INSERT OR REPLACE INTO settings SELECT 'reindex', 'pending'
        WHERE EXISTS (SELECT 1 FROM resources);
    """,
    # 11: the server's own records (clients, keys, replay guards, export jobs), by kind
    """
    CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        expires INTEGER, PRIMARY KEY (kind, key)) WITHOUT ROWID;
    CREATE INDEX records_by_expiry ON records (kind, expires) WHERE expires IS NOT NULL;
    """,
    # 12: the audit chain: each AuditEvent's place and the SHA-256 of its stored bytes
    """
    CREATE TABLE audit_chain (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,
        hash TEXT NOT NULL);
    """,
    # 13: resources stored without their index rows yet (the server's AuditEvents)
    """
    CREATE TABLE deferred_index (rid INTEGER PRIMARY KEY);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return how many migrations that took.

    The version is read and every migration applied under one ``BEGIN IMMEDIATE`` (SQLite's
    write lock, held across processes): of several workers starting on one database, one
    migrates and the others wait for it, then find nothing left to do."""
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 600000")  # a long migration is waited for
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    return len(MIGRATIONS) - current


def _statements(script: str) -> list[str]:
    """The statements of a script (``executescript`` would commit the open transaction);
    ``sqlite3.complete_statement`` keeps a trigger's body in one piece."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
