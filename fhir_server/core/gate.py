"""What the user of the request under way may see and write, as core enforces it, and
who audits its writes.

Set by the REST layer for each authorized request (a ``ContextVar``: asyncio tasks and
worker threads of the request inherit it); absent, nothing is restricted (auth off, a
backend client, the server's own work). Core asks it for search criteria, so paging,
totals, includes and every other search see only what the gate lets through, and for a
verdict on each write before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from fhir_server.search.plan import Node
from fhir_server.types import Resource


@dataclass(frozen=True, slots=True)
class Actor:
    """The user behind a request: their PractitionerRole (or Practitioner) and its
    organisation."""

    reference: str
    organization: str | None


class Gate(Protocol):
    @property
    def actor(self) -> Actor | None:
        """The user (None: not a user, e.g. an administrator's work)."""

    def criteria(self, types: tuple[str, ...]) -> tuple[Node, ...]:
        """Plan criteria that let through only visible resources of these types (every
        served type when empty)."""

    def admits(self, resource_type: str, id: str) -> bool | None:
        """Whether the gate lets this resource through, when it knows without a search
        (None: search for it under the criteria)."""

    async def check_writes(self, resources: Sequence[tuple[str, str, Resource | None]]) -> None:
        """Raise Forbidden unless each write (type, id, new content or None for a delete)
        stays inside what the user may write."""


class WriteAudit(Protocol):
    def written(self, writes: Sequence[tuple[str, str, str]]) -> Resource:
        """The AuditEvent of the request's writes ((kind, type, id) each), committed in the
        same transaction as they are."""


current_gate: ContextVar[Gate | None] = ContextVar("current_gate", default=None)
current_audit: ContextVar[WriteAudit | None] = ContextVar("current_audit", default=None)
