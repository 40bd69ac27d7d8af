"""What every handler is given: the service, the settings, the route table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhir_server.audit.trail import AuditTrail
from fhir_server.auth.guard import Guard
from fhir_server.bulk.runner import ExportRunner
from fhir_server.config import Settings
from fhir_server.core.service import FhirService
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.types import Resource

CACHE_SIZE = 64

if TYPE_CHECKING:
    from fhir_server.rest.router import Router


@dataclass(slots=True)
class Context:
    service: FhirService
    settings: Settings
    router: Router | None = field(default=None)
    cache: dict[object, bytes] = field(default_factory=dict)  # documents built once
    guard: Guard | None = None  # auth on: checks every request's token and scopes
    exports: ExportRunner | None = None  # runs $export jobs (set when the app is built)
    audit: AuditTrail = field(init=False)  # stores the server's AuditEvents

    @property
    def audit_access(self) -> bool:
        """Every request gets an AuditEvent (with auth on, unless switched off)."""
        return self.guard is not None and self.settings.audit_access

    def __post_init__(self) -> None:
        self.audit = AuditTrail(self.service)

    async def record(self, event: Resource) -> None:
        """Store an AuditEvent the server built (returns once it is stored)."""
        await self.audit.record(event)

    def cached(self, key: object, build: Callable[[], bytes]) -> bytes:
        """A document built once (per key: base URL, search registry generation…); at most
        ``CACHE_SIZE`` kept, since clients choose the base URL through their Host header."""
        body = self.cache.get(key)
        if body is None:
            if len(self.cache) >= CACHE_SIZE:
                self.cache.clear()
            body = self.cache[key] = build()
        return body

    async def authorize(self, request: FhirRequest) -> None:
        """Check a request's token and scopes against the route it matches (a no-op with
        auth off); Unauthorized or Forbidden when they do not allow it."""
        if self.guard is None or self.router is None:
            return
        found = self.router.match(request.method, request.path)
        if found is not None:
            request.interaction = found[0].interactions[0]
            await self.guard.check(request, found[1])

    async def dispatch(self, request: FhirRequest) -> FhirResponse:
        """Re-enter the router (batch and transaction entries)."""
        if self.router is None:
            raise RuntimeError("no router is attached to this context")
        return await self.router.dispatch(request)
