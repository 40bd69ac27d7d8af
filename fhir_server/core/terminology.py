"""Code sets for the token modifiers ``:in``, ``:not-in``, ``:below`` and ``:above``.

Built from the ValueSets and CodeSystems stored on the server, before the search is parsed:
a ValueSet's ``expansion.contains`` when it has one, else its ``compose.include`` (listed
concepts, whole code systems, and ``is-a`` / ``descendent-of`` filters over the concept
hierarchy of a stored CodeSystem). ``:below`` / ``:above`` walk that hierarchy; a code
system that is not stored yields just the code itself. Full terminology services
($expand and friends) belong to the terminology module of the profiles issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from fhir_server.core.errors import FhirError
from fhir_server.search.types.base import CodeSet
from fhir_server.search.values import split_raw
from fhir_server.types import Resource

if TYPE_CHECKING:
    from fhir_server.core.search import Searcher

MODIFIERS = ("in", "not-in", "below", "above")
FILTERS = ("is-a", "descendent-of")


@dataclass(frozen=True, slots=True)
class Concept:
    system: str
    code: str
    display: str
    english: str = ""


class Hierarchy:
    """Parent / child links of one CodeSystem's concepts."""

    def __init__(self, code_system: Resource | None) -> None:
        self.children: dict[str, list[str]] = {}
        self.parent: dict[str, str] = {}
        self.concepts: dict[str, Resource] = {}
        if code_system:
            self._walk(code_system.get("concept") or [], None)

    def _walk(self, concepts: list[Resource], parent: str | None) -> None:
        for concept in concepts:
            code = concept.get("code")
            if not isinstance(code, str):
                continue
            self.concepts[code] = concept
            self.children.setdefault(code, [])
            if parent is not None:
                self.children[parent].append(code)
                self.parent[code] = parent
            self._walk(concept.get("concept") or [], code)

    def all_codes(self) -> list[str]:
        return list(self.children)

    def concept(self, system: str, code: str, display: str = "") -> Concept:
        stored = self.concepts.get(code, {})
        english = next((d["value"] for d in stored.get("designation", [])
                        if d.get("language", "").startswith("en")), "")
        return Concept(system, code, display or stored.get("display", ""), english)

    def below(self, code: str) -> Iterator[str]:
        yield code
        for child in self.children.get(code, []):
            yield from self.below(child)

    def above(self, code: str) -> Iterator[str]:
        while code:
            yield code
            code = self.parent.get(code, "")


class Terminology:
    """Loads what a search's terminology modifiers need and answers them."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher

    async def by_url(self, resource_type: str, url: str) -> Resource | None:
        """The stored resource of a canonical url (``url|version`` is not yet told apart)."""
        parsed = self.searcher.parse((resource_type,), [("url", url), ("_count", "1")])
        page = await self.searcher.run(parsed.query)
        return orjson.loads(page.matches[0].content) if page.matches else None

    def _is_token(self, types: tuple[str, ...], name: str) -> bool:
        code = name.split(".")[-1].partition(":")[0]
        registry = self.searcher.registry
        return any((p := registry.get(t, code)) is not None and p.type == "token"
                   for t in (types or registry.types))

    async def code_set(self, types: tuple[str, ...],
                       pairs: list[tuple[str, str]]) -> CodeSet | None:
        """The lookup the token parameters of this search need, or None if none does."""
        wanted = [(name, v) for name, value in pairs
                  if name.rpartition(":")[2] in MODIFIERS and self._is_token(types, name)
                  for v in split_raw(value, ",")]
        if not wanted:
            return None
        value_sets: dict[str, list[tuple[str, str]]] = {}
        systems: dict[str, Hierarchy] = {}
        for name, value in wanted:
            if name.rpartition(":")[2] in ("in", "not-in"):
                value_sets[value] = [(c.system, c.code) for c in
                                     await self.expand(value, systems, name)]
            else:
                system = value.rpartition("|")[0]
                if system not in systems:
                    systems[system] = Hierarchy(await self.by_url("CodeSystem", system))

        def lookup(modifier: str, system: str, code: str) -> list[tuple[str, str]]:
            if modifier in ("in", "not-in"):
                return value_sets[code]
            hierarchy = systems[system]
            walk = hierarchy.below(code) if modifier == "below" else hierarchy.above(code)
            return [(system, c) for c in walk]

        return lookup

    async def hierarchy(self, system: str, systems: dict[str, Hierarchy]) -> Hierarchy:
        if system not in systems:
            systems[system] = Hierarchy(await self.by_url("CodeSystem", system))
        return systems[system]

    async def expand(self, url: str, systems: dict[str, Hierarchy],
                     name: str) -> list[Concept]:
        """The concepts of a stored ValueSet (its expansion, or its compose resolved)."""
        value_set = await self.by_url("ValueSet", url)
        if value_set is None:
            raise FhirError(f"No ValueSet with url {url} is stored on this server", name)
        contains = (value_set.get("expansion") or {}).get("contains")
        if contains:
            return [Concept(c.get("system", ""), c["code"], c.get("display", ""))
                    for c in _flatten(contains)]
        found: list[Concept] = []
        for include in (value_set.get("compose") or {}).get("include", []):
            system = include.get("system", "")
            hierarchy = await self.hierarchy(system, systems)
            if include.get("concept"):
                found += [hierarchy.concept(system, c["code"], c.get("display", ""))
                          for c in include["concept"] if "code" in c]
                continue
            filters = include.get("filter") or []
            if not filters:
                codes = hierarchy.all_codes()
                found += [hierarchy.concept(system, c) for c in codes] if codes else [
                    Concept(system, "", "")]
            for rule in filters:
                if rule.get("op") not in FILTERS or rule.get("property") != "concept":
                    raise FhirError(f"ValueSet {url}: the filter {rule.get('op')!r} on "
                                    f"{rule.get('property')!r} is not supported here", name)
                below = list(hierarchy.below(rule.get("value", "")))
                if rule["op"] == "descendent-of":
                    below = below[1:]
                found += [hierarchy.concept(system, c) for c in below]
        return found


def _flatten(contains: list[Resource]) -> Iterator[Resource]:
    for item in contains:
        if "code" in item:
            yield item
        yield from _flatten(item.get("contains") or [])
