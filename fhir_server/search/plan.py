"""The backend-neutral query plan: what to match, sort, include and page.

Plan nodes name index tables and columns from a fixed vocabulary (``TABLES``); values are
data, never SQL or MongoDB syntax. Each storage adapter compiles plans its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# index table -> its value columns (after ``pid`` and before ``rid``)
TABLES: dict[str, tuple[str, ...]] = {
    "token": ("system", "code"),
    "string": ("norm", "exact"),
    "reference": ("target_type", "target_id", "url", "version"),
    "date": ("low", "high"),
    "number": ("value",),
    "quantity": ("system", "code", "value"),
    "uri": ("uri",),
    "composite": ("system", "code", "v_system", "v_code", "v_low", "v_high", "v_text"),
    "sort": ("value",),
}


@dataclass(frozen=True, slots=True)
class Cmp:
    """``column operator value`` on an index row (``in`` takes a tuple)."""

    column: str
    op: str
    value: Any = None


Conjunction = tuple[Cmp, ...]


@dataclass(frozen=True, slots=True)
class IndexMatch:
    """Resources with a row of ``param`` in ``table`` matching any of the conjunctions."""

    table: str
    param: str
    any_of: tuple[Conjunction, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Missing:
    """Resources with (missing=False) or without (missing=True) any row of ``param``."""

    table: str
    param: str
    missing: bool


@dataclass(frozen=True, slots=True)
class IdMatch:
    """Resources of ``types`` (any type when empty) with one of these ids."""

    ids: tuple[str, ...]
    negate: bool = False
    types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OfType:
    """Resources of one of ``types`` (inside an ``AnyOf`` of a search over several types:
    ``Patient/$everything`` takes every Patient beside the compartments' members)."""

    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LastUpdated:
    """Conditions on the resource's lastUpdated, as a range ``low``..``high`` (ms)."""

    any_of: tuple[Conjunction, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """Resources whose ``param`` references a ``target_type`` resource matching ``where``."""

    param: str
    target_type: str
    where: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Has:
    """``target_type`` resources referenced through ``param`` by a ``source_type`` resource
    matching ``where``."""

    source_type: str
    param: str
    target_type: str
    where: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    nodes: tuple[Node, ...]


Node = IndexMatch | Missing | IdMatch | OfType | LastUpdated | Chain | Has | AnyOf | AllOf


@dataclass(frozen=True, slots=True)
class SortKey:
    """Sort by an indexed parameter (its ``sort`` rows), or ``_lastUpdated`` / ``_id``."""

    param: str  # index key, or "_lastUpdated" / "_id"
    descending: bool = False
    table: str = "sort"  # where the values are: "sort" rows, or a type's index table


@dataclass(frozen=True, slots=True)
class Include:
    """``_include`` (reverse=False) or ``_revinclude`` (reverse=True) through a reference."""

    source_type: str
    params: tuple[str, ...]  # reference index keys
    target_type: str | None = None
    reverse: bool = False
    iterate: bool = False
    brings: tuple[str, ...] = ()  # the types it can bring in (empty: any)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the result order: the last (or first) row's sort values and rid."""

    values: tuple[Any, ...]
    rid: int
    backwards: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    types: tuple[str, ...]
    where: tuple[Node, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    cursor: Cursor | None = None
    total: bool = False
    includes: tuple[Include, ...] = field(default_factory=tuple)
    include_limit: int = 1000
    visible: tuple[Node, ...] = ()  # criteria every included resource must meet too
