"""Compiling a search plan (``search/plan.py``) to MongoDB filters on ``resources``.

Index matches become ``$elemMatch`` on the index entry arrays (``idx.<table>``, each
entry's ``k`` the parameter's index key), served by the compound multikey indexes of
``layout.INDEXES``. A chain or ``_has`` runs its inner search first, as its own indexed
query, and becomes an ``$in`` list of the ids it found: MongoDB has no join a filter can
use, and ``$lookup`` would read every candidate's referrers. Values are always data.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
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
from fhir_server.storage.mongo.layout import DRIVERS

MAX_TEXT = "\U0010ffff"  # sorts after every other character: the end of a prefix range
NOTHING: dict[str, Any] = {"_id": {"$in": []}}
OPS = {"=": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
Filter = dict[str, Any]
# (filter on resources, projection) -> the matching documents' chosen fields
Finder = Callable[[Filter, str], Awaitable[list[Any]]]


def condition(cmp: Cmp) -> dict[str, Any]:
    """A column's condition for one comparison (operators, so that several on one column
    merge into one)."""
    if cmp.op in OPS:
        return {OPS[cmp.op]: cmp.value}
    if cmp.op == "prefix":
        return {"$gte": cmp.value, "$lt": cmp.value + MAX_TEXT}
    if cmp.op == "contains":
        return {"$regex": re.escape(cmp.value)}
    if cmp.op == "in":
        return {"$in": list(cmp.value)}
    if cmp.op == "is-null":
        return {"$eq": None}
    raise ValueError(f"unknown operator {cmp.op}")


def _column(table: str, column: str) -> str:
    if column not in TABLES[table]:
        raise ValueError(f"unknown index column: {table}.{column}")
    return column


def entry_match(table: str, param: str, conjunction: Conjunction) -> Filter:
    """Resources with an entry of ``param`` in ``table`` meeting every comparison."""
    entry: dict[str, Any] = {"k": param}
    for cmp in conjunction:
        entry.setdefault(_column(table, cmp.column), {}).update(condition(cmp))
    return {f"idx.{table}": {"$elemMatch": entry}}


def driver(where: Filter) -> Filter:
    """One indexed single-field clause that ``where`` implies, the narrowest found (exact
    values before ranges), or ``{}``. Put first in a filter, it is the clause a planner
    that serves a query from one single-field index (SecantusDB) looks the candidates up
    by; ``$elemMatch`` itself it cannot look up. For mongod it is redundant and harmless."""
    parts = where.get("$and", []) if set(where) == {"$and"} else [where] if where else []
    found = [clause for part in parts if (clause := _implied(part)) is not None]
    return min(found, key=lambda c: c[0])[1] if found else {}


def _implied(part: Filter) -> tuple[int, Filter] | None:
    """(rank, clause) of one part of a conjunction, when an index can look it up."""
    if set(part) == {"id", "type"} and "$in" in part["id"] and "$in" in part["type"]:
        return 0, {"_id": {"$in": [f"{t}/{i}" for t in part["type"]["$in"]
                                   for i in part["id"]["$in"]]}}
    if set(part) == {"$or"}:  # the same exact column in every branch: its values
        clauses = [found[1] for branch in part["$or"]
                   if (found := _implied(branch)) is not None and found[0] == 1]
        fields = {field for clause in clauses for field in clause}
        if len(fields) != 1 or len(clauses) != len(part["$or"]):
            return None
        field = fields.pop()
        values = [v for clause in clauses
                  for v in clause[field].get("$in", [clause[field].get("$eq")])]
        return 1, {field: {"$in": values}}
    if len(part) != 1:
        return None
    (field, value), = part.items()
    table = field.removeprefix("idx.")
    if table not in DRIVERS or not isinstance(value, dict) or "$elemMatch" not in value:
        return None
    column = f"{field}.{DRIVERS[table]}"
    wanted = value["$elemMatch"].get(DRIVERS[table])
    if wanted is not None and not isinstance(wanted, dict):
        wanted = {"$eq": wanted}
    if not wanted:
        return None
    if set(wanted) in ({"$eq"}, {"$in"}) and wanted.get("$eq", "") is not None:
        return 1, {column: wanted}
    if set(wanted) <= {"$gt", "$gte", "$lt", "$lte"}:
        return 2 if len(wanted) > 1 else 3, {column: wanted}
    return None


def either(filters: list[Filter]) -> Filter:
    return filters[0] if len(filters) == 1 else {"$or": filters} if filters else NOTHING


class MongoCompiler:
    """Compiles plan nodes; ``find`` runs the inner searches of chains and ``_has``."""

    def __init__(self, find: Finder) -> None:
        self.find = find

    async def where(self, nodes: tuple[Node, ...]) -> Filter:
        """``$and`` of the nodes (``{}`` when none)."""
        parts = [await self.node(node) for node in nodes]
        return parts[0] if len(parts) == 1 else {"$and": parts} if parts else {}

    async def node(self, node: Node) -> Filter:
        if isinstance(node, IndexMatch):
            found = either([entry_match(node.table, node.param, c) for c in node.any_of])
            return {"$nor": [found]} if node.negate else found
        if isinstance(node, Missing):
            present = {f"idx.{node.table}": {"$elemMatch": {"k": node.param}}}
            return {"$nor": [present]} if node.missing else present
        if isinstance(node, IdMatch):
            found = {"id": {"$in": list(node.ids)},
                     **({"type": {"$in": list(node.types)}} if node.types else {})}
            return {"$nor": [found]} if node.negate else found
        if isinstance(node, OfType):
            return {"type": {"$in": list(node.types)}}
        if isinstance(node, LastUpdated):
            return either([{"$and": [{"updated": condition(c)} for c in conjunction]}
                           for conjunction in node.any_of])
        if isinstance(node, Chain):
            inner = await self.where(node.where)
            ids = await self.find(searched([node.target_type], inner), "id")
            return {"idx.reference": {"$elemMatch": {
                "k": node.param, "target_type": node.target_type, "target_id": {"$in": ids}}}}
        if isinstance(node, Has):
            return await self._has(node)
        children = [await self.node(child) for child in node.nodes]
        if isinstance(node, AnyOf):
            return either(children)
        assert isinstance(node, AllOf)
        return {"$and": children} if children else {}

    async def _has(self, node: Has) -> Filter:
        inner = await self.where(node.where)
        sources = await self.find(searched([node.source_type], inner), "idx.reference")
        ids = {entry["target_id"] for entries in sources for entry in entries or ()
               if entry["k"] == node.param and entry["target_type"] == node.target_type}
        return {"type": node.target_type, "id": {"$in": sorted(ids)}}


def searched(types: list[str], where: Filter, fixed: Filter | None = None) -> Filter:
    """The current resources of ``types`` (any, when empty) that a compiled ``where``
    matches (and ``fixed``, fields of the caller's): its driver first, then the rest."""
    head = {**driver(where), **(fixed or {}), "deleted": False,
            **({"type": {"$in": types}} if types else {})}
    return conjoined(head, where)


def conjoined(head: Filter, where: Filter) -> Filter:
    """``head`` and ``where``, with ``where``'s conditions beside ``head``'s fields rather
    than under ``$and`` where they can be (several ``$elemMatch`` on one array become one
    ``$all``): a filter with a ``$`` operator at its top SecantusDB serves from no index."""
    if not where:
        return head
    merged = dict(head)
    for part in where["$and"] if set(where) == {"$and"} else [where]:
        for field, value in part.items():
            if merged.get(field) == value:  # (an id search's types, say)
                continue
            if field.startswith("$") or (field in merged and not (
                    _matches(merged[field]) and _matches(value))):
                return {**head, "$and": [where]}
            merged[field] = {"$all": _matches(merged[field]) + _matches(value)} \
                if field in merged else value
    return merged


def _matches(value: Any) -> list[Any]:
    """The ``$elemMatch`` conditions of a field's value (``[]`` if it holds another)."""
    if isinstance(value, dict) and set(value) == {"$elemMatch"}:
        return [value]
    if isinstance(value, dict) and set(value) == {"$all"} and all(
            isinstance(v, dict) and set(v) == {"$elemMatch"} for v in value["$all"]):
        return list(value["$all"])
    return []
