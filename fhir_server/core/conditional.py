"""Conditional interactions resolved by search (https://hl7.org/fhir/R4/http.html#ccreate).

The outcomes the spec gives for 0, 1 and many matches:

| interaction | 0 | 1 | many |
| --- | --- | --- | --- |
| create (``If-None-Exist``) | create | 200, the existing one | 412 |
| update (``PUT [type]?…``) | create (client id allowed) | update it | 412 |
| patch (``PATCH [type]?…``) | 404 | patch it | 412 |
| delete (``DELETE [type]?…``) | nothing to do | delete it | delete all, up to a limit, else 412 |
| reference (``Patient?identifier=…`` in a transaction) | 412 | that resource | 412 |

Atomic: each search that decides a write is kept as a :class:`Condition` of the commit,
which the storage evaluates again inside its write transaction (serialised with every other
commit of every worker process). If it finds anything else, nothing is written and the
whole interaction is resolved again (``attempts``): one condition, however spelled, never
yields two resources. See docs/conditional.md.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl

from fhir_server.core.errors import Conflict, FhirError, NotFound, PreconditionFailed
from fhir_server.core.references import walk_references
from fhir_server.storage.port import Condition, ConditionChanged
from fhir_server.types import Resource

if TYPE_CHECKING:
    from fhir_server.core.service import FhirService

T = TypeVar("T")
CONDITIONAL_REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]+)\?(?P<query>.+)")
ATTEMPTS = 8  # resolutions of one conditional interaction racing with other writers


async def attempts(service: FhirService, act: Callable[[Resolution], Awaitable[T]]) -> T:
    """Run ``act`` with a fresh Resolution until its commit's conditions hold."""
    for _ in range(ATTEMPTS):
        try:
            return await act(Resolution(service))
        except ConditionChanged:
            continue
    raise Conflict("Other writes kept changing what the conditional request matches; "
                   "try again")


class Resolution:
    """The conditional parts of one attempt: targets found by search, and the Conditions
    (``held``) its commit must find unchanged."""

    def __init__(self, service: FhirService) -> None:
        self.service = service
        self.held: list[Condition] = []

    async def _matches(self, resource_type: str, query: str, limit: int) -> list[str]:
        self.service.check_type(resource_type)
        criteria = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        search = await self.service.searcher.condition_query(resource_type, criteria, limit)
        found = [m.id for m in (await self.service.searcher.run(search)).matches]
        self.held.append(Condition(search, tuple(found)))
        return found

    async def create_target(self, resource_type: str, query: str) -> str | None:
        """The id of the one existing match of a conditional create, or None to create."""
        found = await self._matches(resource_type, query, 2)
        if len(found) > 1:
            raise PreconditionFailed(f"If-None-Exist {query!r} matches more than one "
                                     f"{resource_type}", "If-None-Exist")
        return found[0] if found else None

    async def single_target(self, resource_type: str, query: str, method: str,
                            body_id: str | None = None) -> str:
        """The id a conditional update or patch writes."""
        if body_id is not None and not isinstance(body_id, str):
            raise FhirError("The resource id must be a string", f"{resource_type}.id")
        found = await self._matches(resource_type, query, 2)
        if len(found) > 1:
            raise PreconditionFailed(f"{method} {resource_type}?{query} matches more than "
                                     f"one resource", f"{resource_type}?{query}")
        if not found:
            if method == "PATCH":
                raise NotFound(f"No {resource_type} matches {query}", f"{resource_type}?{query}")
            return body_id or self.service.new_id()
        if body_id is not None and body_id != found[0]:
            raise FhirError(f"The resource id {body_id!r} differs from the matching "
                            f"{resource_type}/{found[0]}", f"{resource_type}.id")
        return found[0]

    async def delete_targets(self, resource_type: str, query: str) -> list[str]:
        limit = self.service.settings.conditional_delete_max
        found = await self._matches(resource_type, query, limit + 1)
        if len(found) > limit:
            raise PreconditionFailed(f"DELETE {resource_type}?{query} matches more than "
                                     f"{limit} resources", f"{resource_type}?{query}")
        return found

    async def resolve_references(self, resource: Resource, where: str,
                                 mapping: dict[str, str]) -> None:
        """Add ``Type?criteria`` references of a resource to ``mapping`` as ``Type/id``."""
        for holder, path in walk_references(resource, f"{where}.resource"):
            reference = holder["reference"]
            match = CONDITIONAL_REFERENCE.fullmatch(reference)
            if match is None or reference in mapping:
                continue
            found = await self._matches(match["type"], match["query"], 2)
            if len(found) != 1:
                raise PreconditionFailed(
                    f"The conditional reference {reference} matches {len(found)} resources; "
                    "exactly one is needed", f"{path}.reference")
            mapping[reference] = f"{match['type']}/{found[0]}"
