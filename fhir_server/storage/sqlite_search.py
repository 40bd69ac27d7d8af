"""Compiling a search plan (``search/plan.py``) to SQLite SQL over the index tables.

Returns ``(sql, params)`` as data, so tests can assert the SQL. Values are always bound
parameters; table and column names come only from ``search.plan.TABLES`` through
:func:`identifier`, never from user text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fhir_server.search.plan import (
    TABLES,
    AllOf,
    AnyOf,
    Chain,
    Cmp,
    Conjunction,
    Has,
    IdMatch,
    IndexMatch,
    LastUpdated,
    Missing,
    Node,
    OfType,
)

MAX_TEXT = "\U0010ffff"  # sorts after every other character: the end of a prefix range
LISTED_VALUES = 100  # beyond: a list of values is passed as one JSON array
SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
Sql = tuple[str, list[Any]]
RID_INDEXED = ("date", "quantity", "reference")  # index tables with a (rid, pid) index


def identifier(table: str, column: str | None = None) -> str:
    """The quoted name of an index table (or one of its columns), from the fixed vocabulary."""
    if table not in TABLES or (column is not None and column not in
                               (*TABLES[table], "pid", "rid")):
        raise ValueError(f"unknown index table or column: {table}.{column}")
    return f'"idx_{table}"' if column is None else f'"{column}"'


def open_date_range(node: Node) -> bool:
    """A date match not bounded on both sides (``ge2025``, ``lt2026``): it may list most of
    the table, so it is better checked than listed when other criteria exist."""
    if not isinstance(node, IndexMatch) or node.table != "date" or node.negate:
        return False
    return any(not ({c.op for c in conjunction} >= {">="} and {c.op for c in conjunction}
                    & {"<=", "<"}) for conjunction in node.any_of)


def unitless_quantity(node: Node) -> bool:
    """A quantity match without a unit code: ``(pid, code, value)`` cannot range over its
    values, so listing it reads every quantity of the parameter."""
    return (isinstance(node, IndexMatch) and node.table == "quantity" and not node.negate
            and any(not any(c.column == "code" and c.op == "=" for c in conjunction)
                    for conjunction in node.any_of))


def per_resource(node: Node) -> bool:
    """A criterion better checked for the resources others find than listed (``EXISTS``
    by rid, through the table's rid index): open date ranges, unitless quantities."""
    return open_date_range(node) or unitless_quantity(node)


def checkable(node: Node) -> bool:
    """An index match its table's rid index can check for one resource (``EXISTS`` by
    rid): dates, quantities, references."""
    return isinstance(node, IndexMatch) and node.table in RID_INDEXED and not node.negate


def long_list(node: Node) -> bool:
    """A criterion naming a long list of ids or references (an access tier's patients),
    alone or among alternatives: its matches grow with the list, so it is better checked
    for the resources a walk or another criterion finds (by rid, against the list, which
    SQLite holds once as a set) than listed."""
    if isinstance(node, IdMatch):
        return not node.negate and len(node.ids) > LISTED_VALUES
    if isinstance(node, IndexMatch):
        return checkable(node) and any(c.op == "in" and len(c.value) > LISTED_VALUES
                                       for conjunction in node.any_of for c in conjunction)
    if isinstance(node, AnyOf):
        return any(long_list(n) for n in node.nodes) and all(
            long_list(n) or checkable(n) or isinstance(n, OfType) for n in node.nodes)
    return False


def plain_code(conjunction: Conjunction) -> tuple[str, str | None] | None:
    """(code, system or None) of a token alternative that is a code equality, with or
    without a system equality; None for anything else."""
    by_column = {c.column: c for c in conjunction}
    code, system = by_column.get("code"), by_column.get("system")
    if code is None or code.op != "=" or len(conjunction) != 1 + (system is not None) \
            or (system is not None and system.op != "="):
        return None
    return code.value, None if system is None else system.value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlCompiler:
    """Compiles plan nodes; ``pid`` maps an index key to its integer id (-1 if unknown).

    With ``systems`` (the code systems a token code is stored with, or None when there are
    too many), token codes compile to per-resource checks by primary key, dates,
    quantities and references to checks through their rid index (``checkable``), and
    ``_has`` to a check of the resource's referrers, instead of listed matches: for a walk
    driven by something else (an index-driven sort, a small criterion, the type), listing
    every match would materialise all of them for every page."""

    def __init__(self, pid: Callable[[str], int],
                 systems: Callable[[int, str], list[str] | None] | None = None) -> None:
        self.pid = pid
        self.systems = systems
        self._aliases = 0

    def _alias(self) -> str:
        self._aliases += 1
        return f"t{self._aliases}"

    def where(self, nodes: tuple[Node, ...], alias: str) -> Sql:
        """``AND`` of the nodes on resource alias ``alias`` ("1" when empty). Criteria
        better checked per resource are, when another criterion (or a walk, with
        ``systems``) finds the candidates."""
        parts, params = [], []
        for node in nodes:
            if (len(nodes) > 1 and per_resource(node)) \
                    or (self.systems is not None and checkable(node)):
                sql, values = self._probe(node, alias)  # type: ignore[arg-type]
            elif long_list(node) and (self.systems is not None or any(
                    not (per_resource(n) or long_list(n)) for n in nodes)):
                sql, values = self.check(node, alias)  # (something else finds candidates)
            else:
                sql, values = self.node(node, alias)
            parts.append(sql)
            params += values
        return (" AND ".join(parts) or "1"), params

    def node(self, node: Node, alias: str) -> Sql:
        if isinstance(node, IndexMatch):
            return self._index_match(node, alias)
        if isinstance(node, Missing):
            table = identifier(node.table)
            operator = "NOT IN" if node.missing else "IN"
            return (f"{alias}.rid {operator} (SELECT rid FROM {table} WHERE pid = ?)",
                    [self.pid(node.param)])
        if isinstance(node, IdMatch):
            operator = "NOT IN" if node.negate else "IN"
            if node.types:  # by the (type, id) index, not by checking every resource's id
                kinds = ", ".join("?" * len(node.types))
                ids, params = _in("id", node.ids)
                return (f"{alias}.rid {operator} (SELECT rid FROM resources WHERE type IN "
                        f"({kinds}) AND {ids})", [*node.types, *params])
            ids, params = _in(f"{alias}.id", node.ids)
            return (f"NOT ({ids})" if node.negate else ids), params
        if isinstance(node, OfType):
            return f"{alias}.type IN ({', '.join('?' * len(node.types))})", list(node.types)
        if isinstance(node, LastUpdated):
            return self.conditions(node.any_of, lambda c: f"{alias}.last_updated")
        if isinstance(node, Chain):
            inner = self._alias()
            where, params = self.where(node.where, inner)
            return (f"{alias}.rid IN (SELECT f.rid FROM idx_reference f WHERE f.pid = ? "
                    f"AND f.target_type = ? AND f.target_id IN (SELECT {inner}.id FROM "
                    f"resources {inner} WHERE {inner}.type = ? AND {inner}.deleted = 0 "
                    f"AND {where}))",
                    [self.pid(node.param), node.target_type, node.target_type, *params])
        if isinstance(node, Has) and self.systems is not None:
            return self._has_probe(node, alias)
        if isinstance(node, Has):
            inner = self._alias()
            where, params = self.where(node.where, inner)
            return (f"{alias}.type = ? AND {alias}.id IN (SELECT f.target_id FROM "
                    f"idx_reference f WHERE f.pid = ? AND f.target_type = ? AND f.rid IN "
                    f"(SELECT {inner}.rid FROM resources {inner} WHERE {inner}.type = ? AND "
                    f"{inner}.deleted = 0 AND {where}))",
                    [node.target_type, self.pid(node.param), node.target_type,
                     node.source_type, *params])
        return self._joined(node, alias, self.check if self.systems is not None
                            else self.node)

    @staticmethod
    def _joined(node: AnyOf | AllOf, alias: str, each: Callable[[Node, str], Sql],
                empty: str = "1") -> Sql:
        """The children of ``node``, each compiled by ``each``, joined by OR or AND."""
        parts, params = [], []
        for child in node.nodes:
            sql, values = each(child, alias)
            parts.append(f"({sql})")
            params += values
        joiner = " OR " if isinstance(node, AnyOf) else " AND "
        return "(" + (joiner.join(parts) or empty) + ")", params

    def check(self, node: Node, alias: str) -> Sql:
        """A criterion checked for the one resource ``alias``: index matches through their
        rid index, ids on the resource's own row, alternatives each so."""
        if checkable(node):
            return self._probe(node, alias)  # type: ignore[arg-type]
        if isinstance(node, IdMatch) and not node.negate:
            sql, params = _in(f"+{alias}.id", node.ids)
            if node.types:
                kinds, types = self.node(OfType(node.types), alias)
                sql, params = f"{kinds} AND {sql}", [*types, *params]
            return sql, params
        if isinstance(node, AnyOf):
            return self._joined(node, alias, self.check, empty="0")
        return self.node(node, alias)

    def _has_probe(self, node: Has, alias: str) -> Sql:
        """``_has`` checked per resource: its references of that kind (a primary-key range
        of idx_reference), each source checked against the inner criteria. Index rows
        exist only for current resources, and a type's own parameter only for that type:
        when the inner criteria are index matches, the source's resource row is not read."""
        ref = self._alias()
        head = (f"+{alias}.type = ? AND EXISTS (SELECT 1 FROM idx_reference {ref} ")
        params: list[Any] = [node.target_type]
        own = not node.param.startswith("Resource.")
        if own and all(isinstance(n, IndexMatch | Missing) for n in node.where):
            inner, join = ref, ""
        else:
            inner = self._alias()
            join = (f"CROSS JOIN resources {inner} ON {inner}.rid = {ref}.rid "
                    f"AND {inner}.type = ? AND {inner}.deleted = 0 ")
            params.append(node.source_type)
        where, values = self.where(node.where, inner)
        return (f"{head}{join}WHERE {ref}.pid = ? AND {ref}.target_id = {alias}.id AND "
                f"{ref}.target_type = ? AND {where})",
                [*params, self.pid(node.param), node.target_type, *values])

    def _probe(self, node: IndexMatch, alias: str) -> Sql:
        """An index match checked per resource (``EXISTS`` by rid), for criteria that match
        too many rows to list: another criterion of the query drives. The target of a
        reference is compared as a value ("+"): given a list, SQLite would otherwise probe
        the index once per listed target for every resource checked."""
        condition, params = self.conditions(node.any_of, lambda c: (
            "+" if c == "target_id" else "") + identifier(node.table, c))
        return (f"EXISTS (SELECT 1 FROM {identifier(node.table)} WHERE rid = {alias}.rid "
                f"AND pid = ? AND ({condition}))", [self.pid(node.param), *params])

    def _token_probe(self, node: IndexMatch, alias: str) -> Sql | None:
        """``EXISTS`` by primary key (pid, code, system, rid) per alternative, or None when
        an alternative is not a plain code (with or without its system)."""
        if self.systems is None or node.table != "token" or node.negate:
            return None
        pid, checks, params = self.pid(node.param), [], []
        for conjunction in node.any_of:
            plain = plain_code(conjunction)
            if plain is None:
                return None
            code, system = plain
            systems = [system] if system is not None else self.systems(pid, code)
            if systems is None:
                return None
            checks.append(f"EXISTS (SELECT 1 FROM idx_token WHERE pid = ? AND code = ? AND "
                          f"system IN ({', '.join('?' * len(systems)) or 'NULL'}) "
                          f"AND rid = {alias}.rid)")
            params += [pid, code, *systems]
        return "(" + " OR ".join(checks) + ")", params

    def listed(self, node: IndexMatch) -> Sql:
        """``SELECT rid`` of an index match's rows (a resource may appear more than once)."""
        condition, params = self.conditions(node.any_of, lambda c: identifier(node.table, c))
        return (f"SELECT rid FROM {identifier(node.table)} WHERE pid = ? AND ({condition})",
                [self.pid(node.param), *params])

    def _index_match(self, node: IndexMatch, alias: str) -> Sql:
        probe = self._token_probe(node, alias)
        if probe is not None:
            return probe
        listed, params = self.listed(node)
        return f"{alias}.rid {'NOT IN' if node.negate else 'IN'} ({listed})", params

    def conditions(self, any_of: tuple[Conjunction, ...],
                column: Callable[[str], str]) -> Sql:
        alternatives, params = [], []
        for conjunction in any_of:
            parts = []
            for cmp in conjunction:
                sql, values = self._cmp(cmp, column(cmp.column))
                parts.append(sql)
                params += values
            alternatives.append("(" + (" AND ".join(parts) or "1") + ")")
        return (" OR ".join(alternatives) or "0"), params

    @staticmethod
    def _cmp(cmp: Cmp, column: str) -> Sql:
        if cmp.op in SQL_OPS:
            return f"{column} {SQL_OPS[cmp.op]} ?", [cmp.value]
        if cmp.op == "prefix":
            return f"{column} >= ? AND {column} < ?", [cmp.value, cmp.value + MAX_TEXT]
        if cmp.op == "contains":
            return f"{column} LIKE ? ESCAPE '\\'", [f"%{_escape_like(cmp.value)}%"]
        if cmp.op == "in":
            return _in(column, cmp.value)
        if cmp.op == "is-null":
            return f"{column} IS NULL", []
        raise ValueError(f"unknown operator {cmp.op}")


def _in(column: str, values: tuple[Any, ...] | list[Any]) -> Sql:
    """``column IN (…)``; a long list as one JSON parameter (SQLite makes it a set once)."""
    if len(values) > LISTED_VALUES:
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]
    return (f"{column} IN ({', '.join('?' * len(values))})" if values else "0"), list(values)
