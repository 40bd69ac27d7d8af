"""What every handler is given: the service, the settings, the route table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhir_server.config import Settings
from fhir_server.core.service import FhirService
from fhir_server.rest.request import FhirRequest, FhirResponse

if TYPE_CHECKING:
    from fhir_server.rest.router import Router


@dataclass(slots=True)
class Context:
    service: FhirService
    settings: Settings
    router: Router | None = field(default=None)
    cache: dict[object, bytes] = field(default_factory=dict)  # documents built once

    async def dispatch(self, request: FhirRequest) -> FhirResponse:
        """Re-enter the router (batch and transaction entries)."""
        if self.router is None:
            raise RuntimeError("no router is attached to this context")
        return await self.router.dispatch(request)
