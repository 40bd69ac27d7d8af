"""The SearchParameter registry: one definition per parameter, for extraction and queries.

Loaded from the generated ``r4_search_params.json`` (official R4 parameters of the served
types), then from alliance SearchParameter resources (``profiles/`` and those stored on the
server, added with :meth:`SearchRegistry.add_resource`). Each definition is compiled once:
its FHIRPath expression into an accessor, its type into the class that extracts index
values and compiles query values (``search/types``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources as package_files
from typing import Any

import orjson

from fhir_server.search.fhirpath import Accessor, compile_path
from fhir_server.types import Resource

ALLIANCE_NORMALIZER = "http://alliance-fhir.org/fhir/StructureDefinition/search-normalizer"
SPECIAL = ("_id", "_lastUpdated")  # answered from the resources table, not index rows
UNSUPPORTED = ("_text", "_content", "_query", "_list", "_filter")
TYPES = ("number", "date", "string", "token", "reference", "composite", "quantity", "uri")


@dataclass(frozen=True, slots=True)
class Component:
    type: str
    accessor: Accessor
    code: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one resource type."""

    resource_type: str
    code: str
    type: str
    expression: str | None
    url: str
    accessor: Accessor | None
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    normalizer: str = ""  # "pinyin" for alliance name-pinyin parameters
    deps: frozenset[str] = frozenset()  # top-level JSON keys it reads; empty: always
    key: str = ""  # the index key: "Patient.name"; shared Resource parameters "Resource._tag"
    union_of: tuple[str, ...] = ()  # codes of the parameters whose rows this one reuses
    code_system: str = ""  # the system a bare ``code`` value implies (its required binding)


@cache
def _shape(param: SearchParam) -> tuple[tuple[object, ...], frozenset[str]]:
    """What decides a parameter's index rows, but for its key: its kind, and the set of
    its expression's ``|`` parts."""
    components = tuple((c.type, c.accessor.expression) for c in param.components)
    parts = frozenset(p.strip() for p in (param.expression or "").split(" | "))
    return (param.type, param.normalizer, param.code_system, components), parts


@cache
def r4_definitions() -> dict[str, Any]:
    raw = package_files.files("fhir_server.search").joinpath("r4_search_params.json")
    return orjson.loads(raw.read_bytes())  # type: ignore[no-any-return]


class SearchRegistry:
    """Parameters by resource type and code, plus compartment definitions."""

    def __init__(self, types: Iterable[str], definitions: dict[str, Any] | None = None) -> None:
        definitions = definitions or r4_definitions()
        self.types = tuple(types)
        self.compartments: dict[str, dict[str, list[str]]] = definitions["compartments"]
        self._params: dict[str, dict[str, SearchParam]] = {t: {} for t in self.types}
        self._urls: set[str] = set()
        for rtype in self.types:
            for code, raw in definitions["params"].get(rtype, {}).items():
                if raw["type"] in TYPES:  # not "special" (Location.near: geospatial)
                    self._add(rtype, code, raw)
            self._find_unions(rtype)

    def _add(self, rtype: str, code: str, raw: dict[str, Any], normalizer: str = "") -> None:
        expression = raw.get("expression")
        components = tuple(
            Component(c["type"], compile_path(c["expression"], None), c["code"])
            for c in raw.get("component", []))
        accessor = compile_path(expression, rtype) if expression else None
        deps = accessor.deps if accessor else frozenset()
        if components and accessor is not None:
            deps = self._composite_deps(accessor, components[-1].accessor, rtype)
        shared = raw["url"].startswith("http://hl7.org/fhir/SearchParameter/Resource-")
        self._params[rtype][code] = SearchParam(
            rtype, code, raw["type"], expression, raw["url"], accessor,
            tuple(raw.get("target", ())), components, normalizer,
            deps,
            f"{'Resource' if shared else rtype}.{code}", code_system=raw.get("codeSystem", ""))
        self._urls.add(raw["url"])

    @staticmethod
    def _composite_deps(base: Accessor, last: Accessor, rtype: str) -> frozenset[str]:
        """A composite needs its last component; on the resource itself, that component's
        top-level keys; on a child element (``Observation.component``), that element."""
        keys: set[str] = set()
        for steps in base.paths or [[]]:
            if steps:
                if steps[0].kind != "name":
                    return frozenset()
                keys.add(steps[0].name)
                continue
            own = last.keys_in(rtype)
            if not own:
                return frozenset()
            keys.update(own)
        return frozenset(keys)

    def add_resource(self, resource: Resource) -> list[str]:
        """Register a SearchParameter resource for the served types among its bases.

        Returns the keys added; parameters whose url is already known are skipped.
        """
        url = resource.get("url")
        if not url or url in self._urls or resource.get("type") not in TYPES:
            return []
        normalizer = next((e.get("valueCode", "") for e in resource.get("extension", [])
                           if e.get("url") == ALLIANCE_NORMALIZER), "")
        added = []
        for rtype in resource.get("base", []):
            if rtype in self._params and resource.get("expression"):
                self._add(rtype, resource["code"], {
                    "url": url, "type": resource["type"], "expression": resource["expression"],
                    "target": resource.get("target", ())}, normalizer)
                added.append(f"{rtype}.{resource['code']}")
        return added

    def _find_unions(self, rtype: str) -> None:
        """Mark parameters that add nothing of their own: the same expression as another
        (``phonetic`` and ``name``), or the union of others' (``combo-code`` is ``code |
        component-code``). They keep no index rows; queries OR their parts instead."""
        params = self._params[rtype]
        shapes = {code: _shape(p) for code, p in params.items() if p.expression}
        for code, (kind, parts) in shapes.items():
            if code.startswith("_"):
                continue
            same = [c for c, (k, p) in shapes.items() if k == kind and p == parts and c < code]
            if same:
                params[code] = replace(params[code], union_of=(same[0],))
                continue
            smaller = [c for c, (k, p) in shapes.items() if k == kind and p < parts]
            if smaller and frozenset().union(*(shapes[c][1] for c in smaller)) == parts:
                params[code] = replace(params[code], union_of=tuple(sorted(smaller)))

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self._params.get(resource_type, {}).get(code)

    def params(self, resource_type: str) -> list[SearchParam]:
        return list(self._params.get(resource_type, {}).values())

    def indexed(self, resource_type: str) -> list[SearchParam]:
        """The parameters whose values are extracted into index rows."""
        return [p for p in self.params(resource_type)
                if p.accessor is not None and p.code not in SPECIAL and not p.union_of]
