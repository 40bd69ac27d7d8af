"""Which statements a search runs on a real SQLite file: the planner's choices, as data."""

from __future__ import annotations

import sqlite3

import pytest
from search_pages import lab, put_all

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.search.plan import AnyOf, Cmp, IndexMatch, Query
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


def test_a_long_patient_list_finds_what_a_short_one_does(settings, client):
    """An access tier of many patients (a long list, checked per resource beside a code,
    or listed alone) finds exactly the observations of those patients."""
    put_all(client, [{"resourceType": "Patient", "id": f"p{i}"} for i in range(40)])
    put_all(client, [lab(f"o{i}", "2345-7" if i % 2 else "718-7", "2025-01-05", i,
                         subject={"reference": f"Patient/p{i % 40}"}) for i in range(80)])
    conn = sqlite3.connect(settings.storage.removeprefix("sqlite:///"))
    pids = dict(conn.execute("SELECT key, pid FROM search_params"))
    code = build_service(settings).searcher.parse(
        ("Observation",), [("code", "2345-7")]).query.where
    chosen = [f"p{i}" for i in range(0, 40, 3)]

    def found(patients: list[str], *where) -> set[str]:
        tier = AnyOf((IndexMatch("reference", "Observation.subject", (
            (Cmp("target_type", "=", "Patient"), Cmp("target_id", "in", tuple(patients))),)),))
        page = SearchRunner(conn, lambda key: pids.get(key, -1)).run(
            Query(("Observation",), (*where, tier), count=100))
        return {m.id for m in page.matches}

    padded = chosen + [f"absent{n}" for n in range(200)]  # a long list, same patients
    expected = {f"o{i}" for i in range(80) if f"p{i % 40}" in chosen}
    assert found(chosen) == found(padded) == expected
    assert found(chosen, *code) == found(padded, *code) == {
        o for o in expected if int(o[1:]) % 2}
    conn.close()
