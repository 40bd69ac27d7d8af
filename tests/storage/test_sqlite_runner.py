"""Which statements a search runs on a real SQLite file: the planner's choices, as data."""

from __future__ import annotations

import sqlite3

import pytest
from search_pages import lab, put_all

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.storage.sqlite_query import SearchRunner


def statements(settings: Settings, resource_type: str, query: str) -> list[str]:
    """The SQL a search of ``resource_type?query`` runs, in order."""
    pairs = [(name, value) for name, _, value in (p.partition("=") for p in query.split("&"))]
    parsed = build_service(settings).searcher.parse((resource_type,), pairs)
    conn = sqlite3.connect(settings.storage.removeprefix("sqlite:///"))
    pids = dict(conn.execute("SELECT key, pid FROM search_params"))
    traced: list[str] = []
    conn.set_trace_callback(traced.append)
    SearchRunner(conn, lambda key: pids.get(key, -1)).run(parsed.query)
    conn.close()
    return traced


@pytest.fixture
def labs(client):
    put_all(client, [lab(f"s{i}", "2345-7", f"2025-0{1 + i % 9}-05", i % 10)
                     for i in range(30)])


def test_a_code_beside_open_ranges_counts_nothing_but_walks_the_code(settings, labs):
    """The open ranges are checked per observation of the code; none is counted first."""
    traced = statements(settings, "Observation", "date=ge2025-02-01&date=lt2025-06-01"
                                                 "&code=2345-7")
    assert not any("count(*)" in sql for sql in traced)
    assert any(sql.startswith("SELECT r.rid FROM idx_token d CROSS JOIN resources r")
               for sql in traced)


def test_an_open_range_alone_with_few_matches_is_counted_then_listed(settings, labs):
    """12 matches (at most SMALL): listed, not walked through the type."""
    traced = statements(settings, "Observation", "value-quantity=gt5")
    assert any("count(*)" in sql and "idx_quantity" in sql for sql in traced)
    assert not any('EXISTS (SELECT 1 FROM "idx_quantity" WHERE rid = r.rid' in sql
                   for sql in traced)
