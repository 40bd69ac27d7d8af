"""A string prefix walked in resource order without listing every match.

``Patient?name=王`` matches a share of all patients, so listing the matches and ordering
them by ``rid`` grows with the data. Instead the match is cut into *runs* of
``idx_string`` rows that are each already in rid order, and the runs are merged up to the
page, so the work is about (runs + page), not (matches):

- a one-character prefix (a Chinese surname) is one run of ``idx_string_head``, ordered
  (pid, first character, rid);
- a longer prefix covering few distinct values (``wangwei``) has a run per value in the
  primary key (pid, norm, exact, rid); the values are found by skip-scan (one seek each).
"""

from __future__ import annotations

import sqlite3

from fhir_server.search.plan import IndexMatch
from fhir_server.storage.sqlite_search import MAX_TEXT

Run = tuple[str, list[object]]  # a condition on idx_string rows in rid order, its params
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


def _plain(node: IndexMatch) -> list[tuple[str, str]] | None:
    """The (op, value) of each alternative of a string prefix or equality on the norm of
    one type's parameter, or None for anything else."""
    if node.table != "string" or node.negate or node.param.startswith("Resource."):
        return None
    alternatives = []
    for conjunction in node.any_of:
        if len(conjunction) != 1 or conjunction[0].column != "norm" \
                or conjunction[0].op not in ("prefix", "="):
            return None
        alternatives.append((conjunction[0].op, str(conjunction[0].value)))
    return alternatives


def head_runs(pid: int, node: IndexMatch) -> list[Run] | None:
    """A run per alternative when every one is a one-character prefix, else None. Such a
    walk never reads more rows than listing the matches would, so it needs no count."""
    alternatives = _plain(node)
    if not alternatives or any(op != "prefix" or len(value) != 1
                               for op, value in alternatives):
        return None
    return [("pid = ? AND substr(norm, 1, 1) = ?", [pid, value])
            for _, value in dict.fromkeys(alternatives)]


def value_runs(conn: sqlite3.Connection, pid: int, node: IndexMatch) -> list[Run] | None:
    """A run per distinct (norm, exact) value the match covers, or None when it is not a
    plain prefix or equality, covers more than MAX_VALUES, or a norm has several exact
    forms."""
    alternatives = _plain(node)
    if alternatives is None:
        return None
    values: dict[tuple[str, str], None] = {}
    for op, low in alternatives:
        compare, high = ("<", low + MAX_TEXT) if op == "prefix" else ("<=", low)
        for norm, lowest, highest in conn.execute(VALUES.format(op=compare),
                                                  (pid, low, high, MAX_VALUES + 1)):
            if lowest != highest:
                return None
            values[(norm, lowest)] = None
        if len(values) > MAX_VALUES:
            return None
    return [("pid = ? AND norm = ? AND exact = ?", [pid, norm, exact])
            for norm, exact in values]


def merged_rids(conn: sqlite3.Connection, runs: list[Run], after: int | None,
                backwards: bool, limit: int) -> list[int]:
    """The first ``limit`` resources (after the ``after`` rid, in rid order or backwards
    from it) with a row in one of the runs: a ``UNION`` ordered by rid, which SQLite runs
    as a merge of the runs (dropping repeats), stopping at the limit."""
    if not runs:
        return []
    compare, order = ("<", "DESC") if backwards else (">", "ASC")
    condition = "" if after is None else f" AND rid {compare} ?"
    distinct = "DISTINCT " if len(runs) == 1 else ""  # UNION drops repeats by itself
    selects, params = [], []
    for where, values in runs:
        selects.append(f"SELECT {distinct}rid FROM idx_string WHERE {where}{condition}")
        params += [*values, *([] if after is None else [after])]
    return [row[0] for row in conn.execute(
        " UNION ".join(selects) + f" ORDER BY 1 {order} LIMIT ?", [*params, limit])]
