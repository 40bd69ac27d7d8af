"""Index extraction at write time: a resource in, its index rows out.

For each parameter of the resource's type whose top-level elements are present, the
compiled accessor selects typed values and the parameter type turns them into rows
(``search/types``). Target: ≤ 50 µs for a typical resource.
"""

from __future__ import annotations

from collections import defaultdict

from fhir_server.search.registry import SearchParam, SearchRegistry
from fhir_server.search.types import TYPES
from fhir_server.search.types.base import Context
from fhir_server.types import Resource

IndexRows = dict[str, list[tuple[str, tuple[object, ...]]]]  # table -> [(param key, values)]


class Indexer:
    """Extracts the index rows of resources for one registry."""

    def __init__(self, registry: SearchRegistry, context: Context) -> None:
        self.registry = registry
        self.context = context
        self._plans: dict[str, list[SearchParam]] = {}

    def _params(self, resource_type: str) -> list[SearchParam]:
        plan = self._plans.get(resource_type)
        if plan is None:
            plan = self._plans[resource_type] = self.registry.indexed(resource_type)
        return plan

    def rows(self, resource: Resource, only: frozenset[str] | None = None) -> IndexRows:
        """The index rows of a resource (``only``: of the parameters with these keys)."""
        found: IndexRows = defaultdict(list)
        seen: set[tuple[str, str, tuple[object, ...]]] = set()
        keys = resource.keys()
        for param in self._params(resource["resourceType"]):
            if (param.deps and param.deps.isdisjoint(keys)) \
                    or (only is not None and param.key not in only):
                continue
            values = param.accessor.evaluate(resource)  # type: ignore[union-attr]
            if not values:
                continue
            for table, key, row in TYPES[param.type].extract(param, values, self.context):
                if (table, key, row) not in seen:
                    seen.add((table, key, row))
                    found[table].append((key, row))
        return found
