"""String prefix runs on a real SQLite file: which runs a match is cut into, the order and
repeats of their merge, and that SQLite walks the index instead of sorting."""

from __future__ import annotations

import sqlite3

import pytest

from fhir_server.search.plan import Cmp, IndexMatch
from fhir_server.storage.sqlite_merge import head_runs, merged_rids, value_runs
from fhir_server.storage.sqlite_schema import migrate

NAMES = {1: ["王", "王伟"], 2: ["李", "李芳"], 3: ["王", "王芳"], 4: ["张", "张伟"],
         5: ["王", "王伟"]}


def prefix(*values: str) -> IndexMatch:
    return IndexMatch("string", "Patient.name", tuple((Cmp("norm", "prefix", v),) for v in values))


@pytest.fixture
def conn(tmp_path):
    conn = sqlite3.connect(tmp_path / "merge.db")
    migrate(conn)
    conn.executemany("INSERT INTO idx_string VALUES (4, ?, ?, ?)",
                     [(name, name, rid) for rid, names in NAMES.items() for name in names])
    conn.commit()
    yield conn
    conn.close()


def test_one_character_prefixes_are_one_run_each_without_reading(conn):
    runs = head_runs(4, prefix("王", "李", "王"))
    assert runs == [("pid = ? AND substr(norm, 1, 1) = ?", [4, "王"]),
                    ("pid = ? AND substr(norm, 1, 1) = ?", [4, "李"])]
    assert head_runs(4, prefix("王伟")) is None and head_runs(4, prefix("王", "王伟")) is None


def test_head_runs_merge_in_rid_order_without_repeats(conn):
    """A patient with two rows under 王 (王 and 王伟) appears once; pages go either way."""
    assert merged_rids(conn, head_runs(4, prefix("王")), None, False, 10) == [1, 3, 5]
    assert merged_rids(conn, head_runs(4, prefix("王", "李")), 1, False, 2) == [2, 3]
    assert merged_rids(conn, head_runs(4, prefix("王", "李")), 5, True, 10) == [3, 2, 1]
    plan = " ".join(row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT DISTINCT rid FROM idx_string "
        "WHERE pid = 4 AND substr(norm, 1, 1) = '王' ORDER BY 1 LIMIT 3"))
    assert "idx_string_head" in plan and "TEMP B-TREE" not in plan


def test_each_value_under_a_prefix_is_a_run(conn):
    runs = value_runs(conn, 4, prefix("王"))
    assert runs is not None and [values for _, values in runs] == [
        [4, "王", "王"], [4, "王伟", "王伟"], [4, "王芳", "王芳"]]
    assert merged_rids(conn, value_runs(conn, 4, prefix("王伟")) or [], None, False, 5) == [1, 5]
