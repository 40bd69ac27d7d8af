"""Search as an interaction: parse the request's parameters, run the plan, page it.

Used by search-type, search-system, compartment search, conditional interactions and
conditional references; knows neither HTTP nor SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fhir_server.core.errors import FhirError, TooCostly
from fhir_server.core.gate import current_gate
from fhir_server.core.paging import PageTokens, fingerprint
from fhir_server.core.terminology import Terminology
from fhir_server.search.parse import ParsedSearch, SearchParser
from fhir_server.search.plan import (
    AllOf,
    AnyOf,
    Chain,
    Cmp,
    Has,
    IdMatch,
    IndexMatch,
    Node,
    OfType,
    Query,
)
from fhir_server.search.registry import SearchRegistry
from fhir_server.search.types.base import CodeSet
from fhir_server.storage.port import SearchPage, SearchTimeout, Storage


@dataclass(frozen=True, slots=True)
class SearchResult:
    parsed: ParsedSearch
    page: SearchPage
    next_token: str | None
    previous_token: str | None


class Searcher:
    """Runs searches for the service."""

    def __init__(self, storage: Storage, registry: SearchRegistry, parser: SearchParser) -> None:
        self.storage = storage
        self.registry = registry
        self.parser = parser
        self.tokens = PageTokens(b"")

    def use_secret(self, secret: bytes) -> None:
        self.tokens = PageTokens(secret)

    async def parse_request(self, types: tuple[str, ...], pairs: list[tuple[str, str]],
                            strict: bool = False, base_url: str = "") -> ParsedSearch:
        """Parse a client's search, loading the code sets its modifiers name first."""
        code_set = await Terminology(self).code_set(types, pairs)
        return self.parse(types, pairs, strict, base_url, code_set)

    def parse(self, types: tuple[str, ...], pairs: list[tuple[str, str]],
              strict: bool = False, base_url: str = "",
              code_set: CodeSet | None = None) -> ParsedSearch:
        parsed = self.parser.parse(types, pairs, base_url, code_set)
        if strict and parsed.unknown:
            raise FhirError(f"Unknown search parameter(s): {', '.join(parsed.unknown)}",
                            parsed.unknown[0])
        return parsed

    async def search(self, parsed: ParsedSearch, page_token: str | None = None,
                     extra: tuple[Node, ...] = ()) -> SearchResult:
        """Run a parsed search, from the position a ``_page`` token names."""
        query = parsed.query
        key = fingerprint(query.types, parsed.used + [(f"~{n}", repr(n)) for n in extra])
        cursor = self.tokens.parse(page_token, key) if page_token else None
        query = Query(query.types, query.where + extra, query.sort, query.count, cursor,
                      query.total, query.includes, query.include_limit)
        page = await self.run(query)
        next_token = previous_token = None
        if page.matches and page.has_next:
            next_token = self.tokens.render(page.matches[-1].cursor, key)
        if page.matches and page.has_previous:
            first = page.matches[0].cursor
            previous_token = self.tokens.render(
                type(first)(first.values, first.rid, True), key)
        return SearchResult(parsed, page, next_token, previous_token)

    async def run(self, query: Query) -> SearchPage:
        """A search plan run by storage, narrowed to what the request's gate lets through;
        past the deadline, 422 too-costly."""
        if may_find(query, "AuditEvent"):  # the server's records: every one indexed first
            while await self.storage.index_deferred(500):
                pass
        gate = current_gate.get()
        if gate is not None:
            query = replace(query, where=query.where + gate.criteria(query.types),
                            visible=gate.criteria(_brought(query)) if query.includes else ())
        try:
            return await self.storage.search(query)
        except SearchTimeout:
            raise TooCostly("The search ran past the server's deadline (FHIR_SEARCH_TIMEOUT); "
                            "narrow it with more selective criteria") from None

    async def condition_query(self, resource_type: str, criteria: list[tuple[str, str]],
                              limit: int = 2) -> Query:
        """The plan of a conditional request's criteria, finding up to ``limit`` ids."""
        parsed = await self.parse_request((resource_type,), [*criteria, ("_count", str(limit))],
                                          strict=True)
        if not parsed.query.where:
            raise FhirError("A conditional request needs search criteria", resource_type)
        return parsed.query

    def compartment(self, compartment: str, id: str | tuple[str, ...] | None,
                    resource_type: str) -> Node:
        """Resources of ``resource_type`` in the compartment of ``compartment``/``id`` (of
        any of several ids; in any compartment of that kind when ``id`` is None)."""
        codes = self.registry.compartments.get(compartment, {}).get(resource_type)
        if not codes:
            raise FhirError(f"{resource_type} is not in the {compartment} compartment",
                            f"{compartment}/{id}/{resource_type}")
        owner = (Cmp("target_type", "=", compartment),
                 *((Cmp("target_id", "=", id),) if isinstance(id, str) else
                   (Cmp("target_id", "in", id),) if id is not None else ()))
        matches = tuple(IndexMatch("reference", p.key, (owner,)) for code in codes
                        if (p := self.registry.get(resource_type, code)) is not None)
        return AnyOf(matches)

    def compartment_types(self, compartment: str) -> tuple[str, ...]:
        """The served types that can be in a compartment of this kind."""
        return tuple(sorted(t for t in self.registry.compartments.get(compartment, {})
                            if t in self.registry.types))

    def whole_compartment(self, compartment: str, id: str | None,
                          types: tuple[str, ...], owner: bool = False) -> Node:
        """Resources of any of ``types`` in the compartment (every one of that kind when
        ``id`` is None); with ``owner``, the compartment's owner(s) too."""
        nodes = [self.compartment(compartment, id, t) for t in types
                 if t in self.registry.compartments.get(compartment, {})]
        if owner:
            nodes.append(IdMatch((id,), types=(compartment,)) if id is not None
                         else OfType((compartment,)))
        return AnyOf(tuple(nodes))


def _brought(query: Query) -> tuple[str, ...]:
    """The types a query's includes can bring in (empty: any)."""
    if any(not include.brings for include in query.includes):
        return ()
    return tuple(sorted({t for include in query.includes for t in include.brings}))


def may_find(query: Query, resource_type: str) -> bool:
    """Whether a search may find, bring in, or match through resources of a type."""
    return (not query.types or resource_type in query.types
            or any(not i.brings or resource_type in i.brings for i in query.includes)
            or any(_names(node, resource_type) for node in query.where))


def _names(node: Node, resource_type: str) -> bool:
    """Whether a criterion looks through resources of a type (a chain or ``_has``)."""
    if isinstance(node, Chain | Has):
        through = node.target_type if isinstance(node, Chain) else node.source_type
        return through == resource_type or any(_names(n, resource_type) for n in node.where)
    if isinstance(node, AnyOf | AllOf):
        return any(_names(n, resource_type) for n in node.nodes)
    return False
