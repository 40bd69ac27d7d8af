"""Search parameters of a request into a backend-neutral plan (https://hl7.org/fhir/R4/search.html).

Handles parameter modifiers, ``,`` (OR) and repeats (AND), chains of any depth
(``subject:Patient.organization.name=…``), reverse chains (``_has``, nested), ``_id``,
``_lastUpdated``, ``:missing``, ``_sort``, ``_count``, ``_total``, ``_include`` /
``_revinclude`` (``:iterate``, ``*``). Unknown parameters are collected for the caller
(lenient: left out; strict: 400). Every malformed value is a 400 naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fhir_server.core.errors import FhirError
from fhir_server.search.plan import (
    AllOf,
    AnyOf,
    Chain,
    Has,
    IdMatch,
    Include,
    LastUpdated,
    Missing,
    Node,
    Query,
    SortKey,
)
from fhir_server.search.registry import UNSUPPORTED, SearchParam, SearchRegistry
from fhir_server.search.types import TYPES
from fhir_server.search.types.base import CodeSet, Context, prefixed_any_of
from fhir_server.search.types.date import conjunction as date_conjunction
from fhir_server.search.values import DateRange, non_negative, split_raw

TOTALS = ("none", "estimate", "accurate")
MAX_CHAIN = 4
SORT_TABLES = {"date": "sort", "number": "sort", "quantity": "sort", "string": "sort"}


@dataclass
class ParsedSearch:
    """A parsed search: the plan, the parameters it used (for links), the unknown ones."""

    query: Query
    used: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class SearchParser:
    """Parses query pairs for one or more resource types."""

    def __init__(self, registry: SearchRegistry, context: Context, default_count: int,
                 max_count: int, include_limit: int) -> None:
        self.registry = registry
        self.context = context
        self.default_count = default_count
        self.max_count = max_count
        self.include_limit = include_limit

    def parse(self, types: tuple[str, ...], pairs: list[tuple[str, str]],
              base_url: str = "", code_set: CodeSet | None = None) -> ParsedSearch:
        """The plan of a search; ``base_url`` makes absolute references to us local,
        ``code_set`` answers the terminology modifiers."""
        context = replace(self.context, base_url=base_url, code_set=code_set)
        where: list[Node] = []
        parsed = ParsedSearch(Query(types))
        sort: tuple[SortKey, ...] = ()
        includes: list[Include] = []
        count, total = self.default_count, False
        for name, value in pairs:
            base = name.split(":", 1)[0]
            if base in ("_format", "_pretty", "_summary", "_elements", "_page"):
                continue
            if base == "_type":
                parsed.used.append((name, value))
                continue
            if base == "_count":
                count = self._count(value)
            elif base == "_sort":
                sort = self._sort(types, value)
            elif base == "_total":
                if value not in TOTALS:
                    raise FhirError(f"_total must be one of {', '.join(TOTALS)}", "_total")
                total = value in ("accurate", "estimate")
            elif base in ("_include", "_revinclude"):
                includes += self._includes(name, value, types)
            elif base in ("_contained", "_containedType"):
                raise FhirError(f"{base} is not supported", base)
            else:
                node = self._criterion(types, name, value, 0, context)
                if node is None:
                    parsed.unknown.append(name)
                    continue
                where.append(node)
            parsed.used.append((name, value))
        parsed.query = Query(types, tuple(where), sort, count, None, total, tuple(includes),
                             self.include_limit)
        return parsed

    # -- result parameters ---------------------------------------------------------------

    def _count(self, value: str) -> int:
        return min(non_negative(value, "_count", 0), self.max_count)

    def _sort(self, types: tuple[str, ...], value: str) -> tuple[SortKey, ...]:
        keys = []
        for item in value.split(","):
            code = item.strip()
            descending = code.startswith("-")
            code = code.lstrip("-")
            if code in ("_lastUpdated", "_id"):
                keys.append(SortKey(code, descending))
                continue
            param = self._one_param(types, code, "_sort")
            if param.type == "composite":
                raise FhirError(f"Cannot sort by the composite parameter '{code}'", "_sort")
            param = self._parts(param)[0]
            keys.append(SortKey(param.key, descending, SORT_TABLES.get(param.type, param.type)))
        if not keys:
            raise FhirError("_sort needs at least one parameter", "_sort")
        return tuple(keys)

    def _includes(self, name: str, value: str, types: tuple[str, ...]) -> list[Include]:
        """The includes of one ``_include`` / ``_revinclude``; ``*`` alone: every reference
        of the searched types (``_include``) or to them (``_revinclude``)."""
        reverse = name.startswith("_revinclude")
        modifier = name.partition(":")[2]
        if modifier not in ("", "iterate", "recurse"):
            raise FhirError(f"Unknown modifier on {name}", name)
        if value != "*":
            return [self._include(name, value, types, reverse, bool(modifier))]
        searched = types or self.registry.types
        if not reverse:
            return [Include(t, keys, None, False, bool(modifier), _brought(
                [p for p in self.registry.params(t) if p.type == "reference"]))
                for t in searched if (keys := self._reference_keys(t, None))]
        return [Include(source, keys, None, True, bool(modifier), (source,))
                for source in self.registry.types
                if (keys := self._reference_keys(source, set(searched)))]

    def _reference_keys(self, source: str, targets: set[str] | None) -> tuple[str, ...]:
        """Index keys of the reference parameters of ``source`` (those that may point to
        one of ``targets``, when given)."""
        return tuple(q.key for p in self.registry.params(source) if p.type == "reference"
                     and (targets is None or not p.targets or targets & set(p.targets))
                     for q in self._parts(p))

    def _include(self, name: str, value: str, types: tuple[str, ...], reverse: bool,
                 iterate: bool) -> Include:
        parts = value.split(":")
        if len(parts) not in (2, 3):
            raise FhirError(f"{name} needs Type:parameter[:targetType], got {value!r}", name)
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if source not in self.registry.types:
            raise FhirError(f"Unknown resource type {source!r} in {name}", name)
        if not reverse and not iterate and types and source not in types:
            raise FhirError(f"{name}={value} does not start from the searched type", name)
        if code == "*":
            params = [p for p in self.registry.params(source) if p.type == "reference"]
        else:
            param = self.registry.get(source, code)
            if param is None or param.type != "reference":
                raise FhirError(f"{source} has no reference parameter '{code}'", name)
            params = [param]
        if target is not None and target not in self.registry.types:
            raise FhirError(f"Unknown target type {target!r} in {name}", name)
        brings = (source,) if reverse else (target,) if target else _brought(params)
        return Include(source, tuple(q.key for p in params for q in self._parts(p)), target,
                       reverse, iterate, brings)

    # -- criteria -------------------------------------------------------------------------

    def _criterion(self, types: tuple[str, ...], name: str, value: str,
                   depth: int, context: Context) -> Node | None:
        if depth > MAX_CHAIN:
            raise FhirError(f"Chains deeper than {MAX_CHAIN} are not supported", name)
        if name.startswith("_has:"):
            return self._has(types, name, value, depth, context)
        head, dot, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if code == "_id":
            return IdMatch(tuple(split_raw(value, ",")), negate=modifier == "not",
                           types=types or self.registry.types)
        if code == "_lastUpdated":
            return self._last_updated(value, context)
        if code in UNSUPPORTED:
            raise FhirError(f"The search parameter {code} is not supported", code)
        params = [p for t in (types or self.registry.types) if (p := self.registry.get(t, code))]
        if not params:
            return None
        if len(types) > 1 and len(params) < len(types):
            lacking = [t for t in types if self.registry.get(t, code) is None]
            raise FhirError(f"'{code}' is not a search parameter of {', '.join(lacking)}", code)
        if not types and len({p.key for p in params}) > 1:
            raise FhirError(f"'{code}' differs between resource types; name them with _type",
                            code)
        if len(types) > 1 and len({p.key for p in params}) > 1:
            return AnyOf(tuple(self._on_param(p, modifier, dot, rest, value, depth, name,
                                              context) for p in params))
        return self._on_param(params[0], modifier, dot, rest, value, depth, name, context)

    def _on_param(self, param: SearchParam, modifier: str, dot: str, rest: str, value: str,
                  depth: int, name: str, context: Context) -> Node:
        if param.union_of:
            nodes = tuple(self._on_param(part, modifier, dot, rest, value, depth, name, context)
                          for part in self._parts(param))
            return AllOf(nodes) if modifier == "missing" and value == "true" else AnyOf(nodes)
        if dot:
            return self._chain(param, modifier or None, rest, value, depth, name, context)
        if modifier == "missing":
            if value not in ("true", "false"):
                raise FhirError(f":missing takes true or false, got {value!r}", name)
            table = "token" if param.type == "token" else param.type
            return Missing(table, param.key, value == "true")
        if not value:
            raise FhirError(f"The parameter '{name}' has no value", name)
        return TYPES[param.type].compile(param, modifier or None, split_raw(value, ","),
                                         context)

    def _chain(self, param: SearchParam, target: str | None, rest: str, value: str,
               depth: int, name: str, context: Context) -> Node:
        if param.type != "reference":
            raise FhirError(f"Cannot chain through '{param.code}': it is a {param.type} "
                            "parameter, not a reference", name)
        targets = [target] if target else [t for t in (param.targets or self.registry.types)
                                            if t in self.registry.types]
        if target and target not in self.registry.types:
            raise FhirError(f"Unknown chain target type {target!r}", name)
        chains = []
        for target_type in targets:
            inner = self._criterion((target_type,), rest, value, depth + 1, context)
            if inner is not None:
                chains.append(Chain(param.key, target_type, (inner,)))
        if not chains:
            raise FhirError(f"No target of '{param.code}' has the parameter "
                            f"'{rest.split('.')[0].split(':')[0]}'", name)
        return chains[0] if len(chains) == 1 else AnyOf(tuple(chains))

    def _has(self, types: tuple[str, ...], name: str, value: str, depth: int,
             context: Context) -> Node:
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise FhirError(f"_has needs _has:Type:reference:parameter, got {name!r}", name)
        _, source, code, rest = parts
        if len(types) != 1:
            raise FhirError("_has needs exactly one resource type to search", name)
        if source not in self.registry.types:
            raise FhirError(f"Unknown resource type {source!r} in _has", name)
        param = self.registry.get(source, code)
        if param is None or param.type != "reference":
            raise FhirError(f"{source} has no reference parameter '{code}'", name)
        inner = self._criterion((source,), rest, value, depth + 1, context)
        if inner is None:
            raise FhirError(f"{source} has no search parameter '{rest.split(':')[0]}'", name)
        return Has(source, param.key, types[0], (inner,))

    def _last_updated(self, value: str, context: Context) -> Node:
        return LastUpdated(prefixed_any_of(split_raw(value, ","), lambda prefix, text: (
            date_conjunction(prefix, DateRange.parse(text, context.zone, "_lastUpdated")))))

    def _parts(self, param: SearchParam) -> list[SearchParam]:
        """The parameters a union parameter stands for (itself otherwise)."""
        if not param.union_of:
            return [param]
        return [p for code in param.union_of
                if (p := self.registry.get(param.resource_type, code)) is not None]

    def _one_param(self, types: tuple[str, ...], code: str, where: str) -> SearchParam:
        params = [p for t in (types or self.registry.types) if (p := self.registry.get(t, code))]
        if not params:
            raise FhirError(f"Unknown search parameter '{code}'", where)
        if len({p.key for p in params}) > 1:
            raise FhirError(f"'{code}' differs between resource types", where)
        return params[0]


def _brought(params: list[SearchParam]) -> tuple[str, ...]:
    """The types reference parameters can point to (empty: any, when one has no targets)."""
    if not params or any(not p.targets for p in params):
        return ()
    return tuple(sorted({t for p in params for t in p.targets}))
