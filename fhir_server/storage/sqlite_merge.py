"""A string prefix walked in resource order without listing every match.

``Patient?name=王`` matches a share of all patients, so listing the matches and ordering
them by ``rid`` grows with the data. ``idx_string`` is ordered (pid, norm, exact, rid):
each distinct (norm, exact) value under the prefix is a run already in rid order. When
the prefix covers few distinct values (王, 王伟, 王芳, …), they are found by skip-scan (one
seek each) and their runs merged in rid order up to the page: the work is about
(values + page), not (matches).
"""

from __future__ import annotations

import sqlite3

from fhir_server.search.plan import IndexMatch
from fhir_server.storage.sqlite_search import MAX_TEXT

MAX_VALUES = 64  # distinct values merged at most; a prefix covering more is listed
# the distinct norms from ?2 up to ?3 by skip-scan (a min() seek each), each with its
# lowest and highest exact form: a norm with several forms is not one rid-ordered run
VALUES = """
WITH RECURSIVE v(norm) AS (
    SELECT min(norm) FROM idx_string WHERE pid = ?1 AND norm >= ?2 AND norm {op} ?3
    UNION ALL
    SELECT (SELECT min(norm) FROM idx_string WHERE pid = ?1 AND norm > v.norm AND norm {op} ?3)
    FROM v WHERE v.norm IS NOT NULL LIMIT ?4)
SELECT norm, (SELECT min(exact) FROM idx_string WHERE pid = ?1 AND norm = v.norm),
    (SELECT max(exact) FROM idx_string WHERE pid = ?1 AND norm = v.norm)
FROM v WHERE norm IS NOT NULL
"""


def string_values(conn: sqlite3.Connection, pid: int,
                  node: IndexMatch) -> list[tuple[str, str]] | None:
    """The distinct (norm, exact) values a string match covers, or None when it is not a
    plain prefix or equality on one type's parameter, covers more than MAX_VALUES, or a
    norm has several exact forms."""
    if node.table != "string" or node.negate or node.param.startswith("Resource."):
        return None
    values: dict[tuple[str, str], None] = {}
    for conjunction in node.any_of:
        if len(conjunction) != 1 or conjunction[0].column != "norm" \
                or conjunction[0].op not in ("prefix", "="):
            return None
        low = conjunction[0].value
        op, high = ("<", low + MAX_TEXT) if conjunction[0].op == "prefix" else ("<=", low)
        for norm, lowest, highest in conn.execute(VALUES.format(op=op),
                                                  (pid, low, high, MAX_VALUES + 1)):
            if lowest != highest:
                return None
            values[(norm, lowest)] = None
        if len(values) > MAX_VALUES:
            return None
    return list(values)


def merged_rids(conn: sqlite3.Connection, pid: int, values: list[tuple[str, str]],
                after: int | None, backwards: bool, limit: int) -> list[int]:
    """The first ``limit`` resources (after the ``after`` rid, in rid order or backwards
    from it) with a row of one of the values: a ``UNION`` ordered by rid, which SQLite
    runs as a merge of the runs, stopping at the limit."""
    if not values:
        return []
    compare, order = ("<", "DESC") if backwards else (">", "ASC")
    condition = "" if after is None else f" AND rid {compare} ?"
    run = f"SELECT rid FROM idx_string WHERE pid = ? AND norm = ? AND exact = ?{condition}"
    params: list[object] = []
    for norm, exact in values:
        params += [pid, norm, exact, *([] if after is None else [after])]
    return [row[0] for row in conn.execute(
        " UNION ".join([run] * len(values)) + f" ORDER BY 1 {order} LIMIT ?", [*params, limit])]
