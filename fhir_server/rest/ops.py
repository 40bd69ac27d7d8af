"""Endpoints for operators, outside the FHIR base: ``/health/live``, ``/health/ready`` and
``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fhir_server import jsonbytes
from fhir_server.core.service import FhirService
from fhir_server.rest.observe import Observer
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.storage.port import StorageError

JSON = ("content-type", "application/json")
PROMETHEUS = ("content-type", "text/plain; version=0.0.4; charset=utf-8")
OpsHandler = Callable[[FhirRequest], Awaitable[FhirResponse]]  # outside the FHIR base
OPS_PATHS = ("/health/live", "/health/ready", "/metrics")


def _json(status: int, body: dict[str, object]) -> FhirResponse:
    return FhirResponse(status, jsonbytes.dumps(body), [JSON, ("cache-control", "no-store")])


class Operations:
    """Health and metrics; ``routes`` maps a path to its handler."""

    def __init__(self, service: FhirService, observer: Observer | None) -> None:
        self.service, self.observer = service, observer
        self.routes: dict[tuple[str, str], OpsHandler] = dict(zip(
            (("GET", path) for path in OPS_PATHS), (self.live, self.ready, self.metrics),
            strict=True))
        if observer is None:  # metrics switched off
            del self.routes[("GET", "/metrics")]

    async def live(self, request: FhirRequest) -> FhirResponse:
        """The process answers."""
        return _json(200, {"status": "live"})

    async def ready(self, request: FhirRequest) -> FhirResponse:
        """Storage answers a query and the alliance package is installed."""
        package = f"{self.service.package.name} {self.service.package.version}"
        if not self.service.ready:
            return _json(503, {"status": "not ready", "reason": "starting",
                               "package": package})
        try:
            await self.service.storage.ping()
        except StorageError as error:
            return _json(503, {"status": "not ready", "reason": f"storage: {error}",
                               "package": package})
        return _json(200, {"status": "ready", "storage": "ok", "package": package})

    async def metrics(self, request: FhirRequest) -> FhirResponse:
        assert self.observer is not None
        return FhirResponse(200, self.observer.metrics(), [PROMETHEUS])
