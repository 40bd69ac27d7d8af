"""Running a search plan on SQLite: matching, ordering, keyset paging, includes, totals.

What finds the candidates (the rest of the criteria is checked for each):
- with several listable criteria, ``_has`` or ``_lastUpdated``: the criterion with the
  fewest matches, if at most ``SMALL``, listed;
- otherwise, unsorted: a token code's index range, a string prefix's runs
  (``sqlite_merge``) or, for open ranges and ``_has`` alone, the type, walked in rid
  order to the page;
- otherwise the criteria are listed (``rid IN (…)``).

Order and paging:
- no ``_sort``: resource order (``rid``); the cursor is the last rid, so pages stay exact
  while others write.
- ``_sort`` with at most ``SMALL`` matches: the matches' sort values are read and ordered
  here (any number of keys, missing values last); the cursor holds the last row's keys.
- ``_sort`` on one key with more matches: driven by that key's index in order (``idx_sort``
  or ``resources.last_updated``), keyset cursor (value, rid); resources without a value
  follow in rid order. Further keys only break ties there by rid.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from fhir_server.search.plan import (
    AnyOf,
    Chain,
    Cursor,
    Has,
    IdMatch,
    Include,
    IndexMatch,
    LastUpdated,
    Node,
    Query,
    SortKey,
)
from fhir_server.storage.port import Fact, Match, SearchPage
from fhir_server.storage.sqlite_merge import Run, head_runs, merged_rids, value_runs
from fhir_server.storage.sqlite_search import (
    SqlCompiler,
    long_list,
    per_resource,
    plain_code,
)

SMALL = 2000
HERE, INDEX = "here", "index"  # the cursor's first value names the plan that made it
CONTENT = "SELECT r.rid, r.type, r.id, h.content FROM resources r JOIN history h ON h.seq = r.seq"
COLUMN_SORTS = {"_lastUpdated": "r.last_updated", "_id": "r.id"}
SORT_COLUMNS = {"string": "norm", "token": "code", "reference": "target_id", "uri": "uri"}
MAX_SYSTEMS = 8  # code systems per token code beyond which codes are listed, not probed


class SearchRunner:
    """One search on one connection."""

    def __init__(self, conn: sqlite3.Connection, pid: Callable[[str], int]) -> None:
        self.conn = conn
        self.pid = pid
        self.compiler = SqlCompiler(pid)
        self._known_systems: dict[tuple[int, str], list[str] | None] = {}

    def _systems(self, pid: int, code: str) -> list[str] | None:
        """The code systems stored with a token code (a few index seeks, once per search),
        or None when there are more than MAX_SYSTEMS."""
        if (pid, code) not in self._known_systems:
            self._known_systems[(pid, code)] = self._find_systems(pid, code)
        return self._known_systems[(pid, code)]

    def _find_systems(self, pid: int, code: str) -> list[str] | None:
        found: list[str] = []
        row = self.conn.execute("SELECT min(system) FROM idx_token WHERE pid = ? AND code = ?",
                                (pid, code)).fetchone()
        while row is not None and row[0] is not None:
            if len(found) == MAX_SYSTEMS:
                return None
            found.append(row[0])
            row = self.conn.execute("SELECT min(system) FROM idx_token WHERE pid = ? AND "
                                    "code = ? AND system > ?", (pid, code, row[0])).fetchone()
        return found

    def checks(self, nodes: tuple[Node, ...]) -> tuple[str, list[Any]]:
        """The criteria as per-resource checks on ``r`` (for a walk in rid order)."""
        return SqlCompiler(self.pid, self._systems).where(nodes, "r")

    def _where(self, query: Query, compiler: SqlCompiler,
               by_type: bool = False) -> tuple[str, list[Any]]:
        where, params = compiler.where(query.where, "r")
        if query.types:
            # with criteria, "+" keeps the planner from walking every resource of the type
            # in a type index (it has no statistics to know better on a fresh database),
            # unless that walk is the plan (``by_type``: a _lastUpdated or _id sort)
            unary = "+" if query.where and not by_type else ""
            where += f" AND {unary}r.type IN ({', '.join('?' * len(query.types))})"
            params += list(query.types)
        return "+r.deleted = 0 AND " + where, params

    def run(self, query: Query) -> SearchPage:
        small = self._small_driver(query)
        walks_type = small is None and self._walks_type(query)
        if small is not None:  # its matches listed (an IN list is walked in rid order),
            listed, head = self._listed(small, query.types)  # the rest checked for each
            where, params = self._where(
                replace(query, where=tuple(n for n in query.where if n is not small)),
                SqlCompiler(self.pid, self._systems))
            where, params = f"r.rid IN ({listed}) AND {where}", [*head, *params]
        elif walks_type:  # each resource of the type in turn, checked
            where, params = self._where(query, SqlCompiler(self.pid, self._systems),
                                        by_type=True)
        else:
            where, params = self._where(query, self.compiler)
        plan = query.cursor.values[0] if query.cursor and query.cursor.values else None
        if not query.sort:
            rows, has_next, has_previous = self._by_rid(query, where, params,
                                                        small is not None or walks_type)
        elif plan == HERE or (plan is None and (not _indexed(query.sort[0]) or self._count(
                where, params, SMALL, query) <= SMALL)):
            rows, has_next, has_previous = self._sorted_here(query, where, params)
        else:  # the sort index drives: codes are checked per row, not listed
            rows, has_next, has_previous = self._by_index(query, *self._where(
                query, SqlCompiler(self.pid, self._systems),
                by_type=query.sort[0].param in COLUMN_SORTS))
        total = None
        if query.total:
            total = self._count(where, params, None, query)
        elif query.cursor is None and not has_next:
            total = len(rows)
        else:
            total = self._kept_count(query)
        matches = self._load(rows)
        included, hit = self._includes(query, matches)
        return SearchPage(matches, included, total, has_next, has_previous, hit)

    def facts(self, query: Query, wanted: Sequence[Fact]) -> list[tuple[Any, ...]]:
        """Each match's id and wanted index values: a reference's target from the rows by
        resource (``idx_reference_rid``), a sort value by its key (rid, pid)."""
        where, params = self._where(query, self.compiler)
        columns, heads = [], []
        for fact in wanted:
            heads.append(self.pid(fact.param))
            if fact.table == "reference":
                columns.append("(SELECT x.target_type || '/' || x.target_id FROM idx_reference"
                               " x WHERE x.rid = r.rid AND x.pid = ? LIMIT 1)")
            else:
                columns.append("(SELECT s.value FROM idx_sort s WHERE s.rid = r.rid"
                               " AND s.pid = ?)")
        select = ", ".join(["r.id", *columns])
        return [tuple(row) for row in self.conn.execute(
            f"SELECT {select} FROM resources r WHERE {where}", [*heads, *params])]

    # -- counting and loading ----------------------------------------------------------

    def _count(self, where: str, params: list[Any], bound: int | None = None,
               query: Query | None = None) -> int:
        """The number of matches, or more than ``bound`` when there are more. A query of
        one plain index criterion is counted on that index alone (``_countable``); a
        bounded count of a type without criteria (choosing a sort plan) on the type index,
        deleted resources included: either plan gives the same pages."""
        limit = "" if bound is None else f" LIMIT {int(bound) + 1}"
        if bound is not None and query is not None and not query.where \
                and len(query.types) == 1:
            return self._count_rows(f"SELECT 1 FROM resources WHERE type = ?{limit}",
                                    list(query.types))
        if query is not None and self._countable(query):
            node = query.where[0]
            assert isinstance(node, IndexMatch)
            value = self._one_token_value(node)
            if value is not None:
                return self._token_count(value)
            listed, values = self._listed(node)
            return self._count_rows(f"SELECT DISTINCT rid FROM ({listed}){limit}", values)
        return self._count_rows(f"SELECT 1 FROM resources r WHERE {where}{limit}", params)

    def _kept_count(self, query: Query) -> int | None:
        """The total when the index keeps it (one token code: ``token_counts``), else None:
        clients get a total without asking when it costs one lookup."""
        if not self._countable(query):
            return None
        node = query.where[0]
        assert isinstance(node, IndexMatch)
        value = self._one_token_value(node)
        return None if value is None else self._token_count(value)

    def _token_count(self, value: list[Any]) -> int:
        """Resources with a (pid, code, system): kept by the idx_token triggers."""
        row = self.conn.execute("SELECT n FROM token_counts WHERE pid = ? AND code = ? "
                                "AND system = ?", value).fetchone()
        return int(row[0]) if row else 0

    def _count_rows(self, select: str, params: list[Any]) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM ({select})", params).fetchone()[0])

    @staticmethod
    def _countable(query: Query) -> bool:
        """One plain index criterion on one type: its rows can be counted directly (index
        rows exist only for current, non-deleted resources)."""
        if len(query.types) != 1 or len(query.where) != 1:
            return False
        node = query.where[0]
        return (isinstance(node, IndexMatch) and not node.negate
                and not node.param.startswith("Resource."))

    def _listed(self, node: Node, types: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
        """``SELECT rid`` of an index match's rows (a resource may appear more than once),
        of the resources of ``types`` last updated in a range (by their type index), or of
        the resources another criterion (``_listable``) selects."""
        if isinstance(node, IndexMatch):
            return self.compiler.listed(node)
        if isinstance(node, LastUpdated):
            condition, params = self.compiler.conditions(node.any_of,
                                                         lambda c: "last_updated")
            return (f"SELECT rid FROM resources WHERE type IN "
                    f"({', '.join('?' * len(types))}) AND ({condition})", [*types, *params])
        condition, params = self.compiler.node(node, "r")
        return f"SELECT r.rid FROM resources r WHERE {condition}", params

    def _load(self, rows: list[tuple[int, tuple[Any, ...]]]) -> list[Match]:
        if not rows:
            return []
        found = {r[0]: r for r in self.conn.execute(
            f"{CONTENT} WHERE r.rid IN ({', '.join('?' * len(rows))})", [r for r, _ in rows])}
        return [Match(found[rid][1], found[rid][2], found[rid][3], Cursor(keys, rid))
                for rid, keys in rows if rid in found]

    def _one_token_value(self, node: IndexMatch) -> list[Any] | None:
        """(pid, code, system) when a token match is one code of one system (given, or the
        only one stored with that code); None otherwise."""
        plain = plain_code(node.any_of[0]) if len(node.any_of) == 1 else None
        if node.table != "token" or node.negate or plain is None:
            return None
        code, system = plain
        pid = self.pid(node.param)
        systems = [system] if system is not None else self._systems(pid, code)
        if systems is None or len(systems) != 1:
            return None
        return [pid, code, systems[0]]

    # -- resource order ----------------------------------------------------------------

    def _token_driver(self, query: Query) -> tuple[list[Any], Query] | None:
        """(pid, code, system) of the token code (one code of one system) with the fewest
        matches, whose index range walks its matches in rid order, and the query without
        it, to check for each; None when no criterion is such a code. Used when nothing
        smaller drives: listing every match of two large criteria grows with the data,
        the walk stops at the page."""
        best: tuple[int, list[Any], Node] | None = None
        for node in query.where:
            value = self._one_token_value(node) if isinstance(node, IndexMatch) else None
            if value is not None:
                found = self._token_count(value) if len(query.where) > 1 else 0
                if best is None or found < best[0]:
                    best = (found, value, node)
        if best is None:
            return None
        _, value, chosen = best
        return value, replace(query, where=tuple(n for n in query.where if n is not chosen))

    def _small_driver(self, query: Query) -> Node | None:
        """For a query with ``_has``, ``_lastUpdated`` or several listed criteria: the
        listed criterion with the fewest matches, when at most SMALL (``_bounded_count``).
        Its matches are listed and walked in rid order; the rest is checked per candidate,
        not listed: a ``_has`` source set (every urgent referral, say) or a code's
        observations grow with the data, a birth year's patients or one patient's
        observations much less; ``_lastUpdated`` is otherwise checked on every resource in
        turn, which a recent range (an incremental pull) leaves to the very end."""
        updated = bool(query.types) and any(isinstance(n, LastUpdated) for n in query.where)
        candidates = [n for n in query.where if _listable(n, updated)]
        if len(candidates) < 2 and not updated \
                and not any(isinstance(n, Has) for n in query.where):
            return None
        best: tuple[int, Node] | None = None
        for node in candidates:
            found = self._bounded_count(node, query.types)
            if found <= SMALL and (best is None or found < best[0]):
                best = (found, node)
        return None if best is None else best[1]

    def _walks_type(self, query: Query) -> bool:
        """Every criterion is one better checked per resource (``value-quantity=gt5.5``,
        ``date=ge2025``, a ``_has``) and matches more than SMALL (a ``_has`` counted by its
        sources, when its inner criterion is one index match): walking the type in rid
        order finds a page soon, where listing reads every match (and, with fewer
        matches, lists them). Counted only once every criterion qualifies."""
        counted: list[tuple[Node, tuple[str, ...]]] = []
        for node in query.where:
            if isinstance(node, Has) and len(node.where) == 1 \
                    and isinstance(node.where[0], IndexMatch):
                counted.append((node.where[0], (node.source_type,)))
            elif per_resource(node) or long_list(node):
                counted.append((node, query.types))
            else:
                return False
        return len(query.types) == 1 and bool(counted) and all(
            self._bounded_count(node, types) > SMALL for node, types in counted)

    def _bounded_count(self, node: Node, types: tuple[str, ...], bound: int = SMALL) -> int:
        """The matches of one criterion, or more than ``bound``: a code of one system is
        looked up in ``token_counts``, others are counted with that bound."""
        value = self._one_token_value(node) if isinstance(node, IndexMatch) else None
        if value is not None:
            return self._token_count(value)
        if isinstance(node, AnyOf):  # each alternative counted (listing their union would
            found = 0  # read every match of a long list first)
            for child in node.nodes:
                found += self._bounded_count(child, types, bound - found)
                if found > bound:
                    break
            return found
        listed, params = self._listed(node, types)
        return self._count_rows(f"{listed} LIMIT {bound + 1}", params)

    def _string_merge(self, query: Query) -> list[Run] | None:
        """The rid-ordered runs (``sqlite_merge``) to merge when the query is one string
        prefix of one type: a one-character prefix's run, or a run per value when it covers
        few values and has more matches than a page per value (counted with that bound):
        fewer are cheaper listed."""
        if len(query.types) != 1 or len(query.where) != 1 \
                or not isinstance(query.where[0], IndexMatch):
            return None
        node = query.where[0]
        pid = self.pid(node.param)
        runs = head_runs(pid, node)
        if runs is not None:
            return runs
        runs = value_runs(self.conn, pid, node)
        if runs is None:
            return None
        budget = len(runs) * (query.count + 1)
        return None if self._bounded_count(node, (), budget) <= budget else runs

    def _by_rid(self, query: Query, where: str, params: list[Any],
                driven: bool) -> tuple[list[tuple[int, tuple[Any, ...]]], bool, bool]:
        """A page in resource order; unless something already drives (``driven``), a
        token code walks its index range or a string prefix merges its runs."""
        cursor = query.cursor
        backwards = bool(cursor and cursor.backwards)
        source, rid = "resources r", "r.rid"
        driver = None if driven else self._token_driver(query)
        if driver is not None:  # walk the code's index range (already in rid order) and
            head, rest = driver  # stop at the page, instead of listing every match first
            source = ("idx_token d CROSS JOIN resources r ON r.rid = d.rid AND d.pid = ? "
                      "AND d.code = ? AND d.system = ?")
            rid = "d.rid"
            where, params = self._where(rest, SqlCompiler(self.pid, self._systems))
            params = [*head, *params]
        runs = None if driven or driver is not None else self._string_merge(query)
        if runs is not None:  # a string prefix's rid-ordered runs, merged
            rids = merged_rids(self.conn, runs, cursor.rid if cursor else None, backwards,
                               query.count + 1)
        else:
            condition = ""
            if cursor is not None:
                condition = f" AND {rid} {'<' if backwards else '>'} ?"
                params = [*params, cursor.rid]
            order = "DESC" if backwards else "ASC"
            rids = [row[0] for row in self.conn.execute(
                f"SELECT r.rid FROM {source} WHERE {where}{condition} ORDER BY {rid} {order} "
                f"LIMIT ?", [*params, query.count + 1])]
        more = len(rids) > query.count
        rids = rids[: query.count]
        if backwards:
            rids.reverse()
            return [(r, ()) for r in rids], True, more
        return [(r, ()) for r in rids], more, cursor is not None

    # -- small sorted results ------------------------------------------------------------

    def _sort_expression(self, key: SortKey) -> tuple[str, list[Any]]:
        if key.param in COLUMN_SORTS:
            return COLUMN_SORTS[key.param], []
        if key.table == "sort":
            return "(SELECT value FROM idx_sort WHERE pid = ? AND rid = r.rid)", [
                self.pid(key.param)]
        return "NULL", []

    def _lowest(self, key: SortKey, where: str, params: list[Any]) -> dict[int, Any]:
        """The lowest value per matching resource of a parameter without sort rows."""
        column = SORT_COLUMNS[key.table]
        return dict(self.conn.execute(
            f"SELECT rid, min({column}) FROM idx_{key.table} WHERE pid = ? AND rid IN "
            f"(SELECT r.rid FROM resources r WHERE {where}) GROUP BY rid",
            [self.pid(key.param), *params]).fetchall())

    def _sorted_here(self, query: Query, where: str,
                     params: list[Any]) -> tuple[list[tuple[int, tuple[Any, ...]]], bool, bool]:
        columns, column_params = [], []
        for key in query.sort:
            sql, values = self._sort_expression(key)
            columns.append(sql)
            column_params += values
        rows = [(row[0], tuple(row[1:])) for row in self.conn.execute(
            f"SELECT r.rid, {', '.join(columns)} FROM resources r WHERE {where}",
            [*column_params, *params])]
        for index, key in enumerate(query.sort):
            if key.param not in COLUMN_SORTS and key.table != "sort":
                lowest = self._lowest(key, where, params)
                rows = [(rid, (*keys[:index], lowest.get(rid), *keys[index + 1:]))
                        for rid, keys in rows]
        sentinel = -1
        cursor = query.cursor
        if cursor is not None:
            rows.append((sentinel, tuple(cursor.values[1:])))
        ordered = [(rid, (HERE, *keys)) for rid, keys in _order(
            rows, query.sort, cursor.rid if cursor else None,
            bool(cursor and cursor.backwards))]
        if cursor is None:
            page = ordered[: query.count]
            return page, len(ordered) > query.count, False
        position = next(i for i, (rid, _) in enumerate(ordered) if rid == sentinel)
        ordered.pop(position)
        if cursor.backwards:
            start = max(position - query.count, 0)
            return ordered[start:position], True, start > 0
        page = ordered[position: position + query.count]
        return page, position + query.count < len(ordered), True

    # -- large sorted results ------------------------------------------------------------

    def _by_index(self, query: Query, where: str,
                  params: list[Any]) -> tuple[list[tuple[int, tuple[Any, ...]]], bool, bool]:
        key = query.sort[0]
        cursor = query.cursor
        backwards = bool(cursor and cursor.backwards)
        descending = key.descending != backwards
        phase_b_first = backwards  # going back from the value-less tail into valued rows
        missing, value = (cursor.values[1], cursor.values[2]) if cursor else (False, None)
        rows: list[tuple[int, tuple[Any, ...]]] = []
        want = query.count + 1
        phases = ("b", "a") if phase_b_first else ("a", "b")
        for phase in phases:
            if len(rows) >= want:
                break
            if phase == "a" and cursor is not None and missing and not backwards:
                continue  # already past the valued rows
            if phase == "b" and cursor is not None and not missing and backwards:
                continue  # valued rows come before the value-less ones
            after = None
            if cursor is not None and (phase == "b") == bool(missing):
                after = (value, cursor.rid)
            rows += self._phase(phase, key, where, params, after, descending,
                                want - len(rows))
        more = len(rows) > query.count
        rows = rows[: query.count]
        if backwards:
            rows.reverse()
            return rows, True, more
        return rows, more, cursor is not None

    def _phase(self, phase: str, key: SortKey, where: str, params: list[Any],
               after: tuple[Any, int] | None, descending: bool,
               limit: int) -> list[tuple[int, tuple[Any, ...]]]:
        """One phase of an index-driven sort: "a" rows with a value, "b" rows without."""
        order = "DESC" if descending else "ASC"
        compare = "<" if descending else ">"
        if phase == "b":
            if key.param in COLUMN_SORTS:
                return []
            condition = "r.rid NOT IN (SELECT rid FROM idx_sort WHERE pid = ?)"
            tail: list[Any] = [self.pid(key.param)]
            if after is not None:
                condition += f" AND r.rid {compare} ?"
                tail.append(after[1])
            return [(row[0], (INDEX, True, None)) for row in self.conn.execute(
                f"SELECT r.rid FROM resources r WHERE {where} AND {condition} "
                f"ORDER BY r.rid {order} LIMIT ?", [*params, *tail, limit])]
        head: list[Any] = []
        if key.param in COLUMN_SORTS:
            column, rid, source = COLUMN_SORTS[key.param], "r.rid", "resources r"
        else:
            column, rid = "s.value", "s.rid"
            source = "idx_sort s CROSS JOIN resources r ON r.rid = s.rid AND s.pid = ?"
            head = [self.pid(key.param)]
        condition, tail = "1", []
        if after is not None:  # a row value, so the index range is walked in order
            condition = f"({column}, {rid}) {compare} (?, ?)"
            tail = [after[0], after[1]]
        return [(row[0], (INDEX, False, row[1])) for row in self.conn.execute(
            f"SELECT r.rid, {column} FROM {source} WHERE {where} AND {condition} "
            f"ORDER BY {column} {order}, {rid} {order} LIMIT ?",
            [*head, *params, *tail, limit])]

    # -- includes --------------------------------------------------------------------------

    def _includes(self, query: Query, matches: list[Match]) -> tuple[list[Match], bool]:
        if not query.includes or not matches:
            return [], False
        seen = {(m.resource_type, m.id) for m in matches}
        included: list[Match] = []
        frontier = matches
        first = True
        while frontier:
            found: list[Match] = []
            for include in query.includes:
                if include.iterate or first:
                    found += self._include(include, frontier, query.visible)
            new = []
            for match in found:
                if (match.resource_type, match.id) not in seen:
                    seen.add((match.resource_type, match.id))
                    new.append(match)
            if len(included) + len(new) > query.include_limit:
                return included + new[: query.include_limit - len(included)], True
            included += new
            frontier = [m for m in new if any(i.iterate for i in query.includes)]
            first = False
        return included, False

    def _include(self, include: Include, sources: list[Match],
                 visible: tuple[Node, ...]) -> list[Match]:
        relevant = [m for m in sources if m.resource_type == include.source_type] \
            if not include.reverse else [m for m in sources if not include.target_type
                                          or m.resource_type == include.target_type]
        if not relevant:
            return []
        pids = [self.pid(p) for p in include.params]
        pid_marks = ", ".join("?" * len(pids))
        seen, seen_params = self.checks(visible)
        if include.reverse:
            pairs = [(m.resource_type, m.id) for m in relevant]
            condition = " OR ".join("(f.target_type = ? AND f.target_id = ?)" for _ in pairs)
            rows = self.conn.execute(
                f"{CONTENT} JOIN idx_reference f ON f.rid = r.rid WHERE r.deleted = 0 AND "
                f"r.type = ? AND f.pid IN ({pid_marks}) AND ({condition}) AND {seen}",
                [include.source_type, *pids, *[v for pair in pairs for v in pair],
                 *seen_params])
        else:
            rids = [m.cursor.rid for m in relevant]
            targets = self.conn.execute(
                f"SELECT DISTINCT target_type, target_id FROM idx_reference WHERE pid IN "
                f"({pid_marks}) AND rid IN ({', '.join('?' * len(rids))}) AND target_id != ''"
                + (" AND target_type = ?" if include.target_type else ""),
                [*pids, *rids, *([include.target_type] if include.target_type else [])]
            ).fetchall()
            if not targets:
                return []
            condition = " OR ".join("(r.type = ? AND r.id = ?)" for _ in targets)
            rows = self.conn.execute(f"{CONTENT} WHERE r.deleted = 0 AND ({condition}) "
                                     f"AND {seen}",
                                     [*[v for pair in targets for v in pair], *seen_params])
        return [Match(row[1], row[2], row[3], Cursor((), row[0])) for row in rows]


def _listable(node: Node, updated: bool) -> bool:
    """A criterion whose matches can be listed without reading every resource: a plain
    index match (not one better checked per resource), ids by type, a chain, or (with
    ``updated``: a type is given) a ``_lastUpdated`` range."""
    if isinstance(node, IndexMatch):
        return not node.negate and not per_resource(node)
    if isinstance(node, IdMatch):
        return bool(node.types) and not node.negate
    return isinstance(node, Chain) or (isinstance(node, LastUpdated) and updated)


def _indexed(key: SortKey) -> bool:
    """Whether results can be walked in this key's order by an index."""
    return key.param in COLUMN_SORTS or key.table == "sort"


def _order(rows: list[tuple[int, tuple[Any, ...]]], keys: tuple[SortKey, ...],
           sentinel_rid: int | None, before: bool) -> list[tuple[int, tuple[Any, ...]]]:
    """Rows sorted by the keys (missing values last in either direction), then rid. The
    sentinel (rid -1) sorts as the row it stands for: just after it, or just before."""

    def rid_key(row: tuple[int, tuple[Any, ...]]) -> tuple[int, int]:
        if row[0] == -1 and sentinel_rid is not None:
            return sentinel_rid, -1 if before else 1
        return row[0], 0

    ordered = sorted(rows, key=rid_key)
    for index in reversed(range(len(keys))):
        descending = keys[index].descending
        rank = _present_first if descending else _missing_last

        def by_key(row: tuple[int, tuple[Any, ...]], i: int = index,
                   rank: Callable[[Any], tuple[bool, Any]] = rank) -> tuple[bool, Any]:
            return rank(row[1][i])

        ordered.sort(key=by_key, reverse=descending)
    return ordered


def _present_first(value: Any) -> tuple[bool, Any]:
    return (True, value) if value is not None else (False, 0)


def _missing_last(value: Any) -> tuple[bool, Any]:
    return (False, value) if value is not None else (True, 0)
