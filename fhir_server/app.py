"""Wiring: settings -> storage, service, router, ASGI app (with metrics, logs, CORS)."""

from __future__ import annotations

from typing import Any

from fhir_server.bulk.runner import ExportRunner
from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.gate import Gate
from fhir_server.core.referral_deadlines import OverdueSweep
from fhir_server.core.service import FhirService
from fhir_server.periodic import Periodic
from fhir_server.rest.asgi import FhirAsgiApp
from fhir_server.rest.context import Context
from fhir_server.rest.cors import CorsMiddleware
from fhir_server.rest.dashboard import Dashboard
from fhir_server.rest.observe import Observer
from fhir_server.rest.ops import Operations
from fhir_server.rest.ratelimit import RateLimiter
from fhir_server.rest.request import FhirRequest
from fhir_server.rest.router import Router
from fhir_server.rest.routes import ROUTES
from fhir_server.rest.smart import SmartEndpoints
from fhir_server.startup import report_failure
from fhir_server.storage.mongo.storage import MongoStorage, is_mongo_url
from fhir_server.storage.port import Storage
from fhir_server.storage.sqlite import SqliteStorage
from fhir_server.subscriptions.notifier import Notifier
from fhir_server.subscriptions.websocket import parse_body


def open_storage(settings: Settings) -> Storage:
    """The adapter named by the storage URL's scheme."""
    url = settings.storage
    if url.startswith("sqlite:"):
        return SqliteStorage(url, durability=settings.durability,
                             search_timeout=settings.search_timeout)
    if is_mongo_url(url):
        return MongoStorage(url, search_timeout=settings.search_timeout,
                            explained=settings.mongo_explain)
    raise ValueError(f"Unsupported storage URL {url!r}; use sqlite:///path/to/file.db or "
                     "mongodb://host/database")


def build_service(settings: Settings) -> FhirService:
    return FhirService(open_storage(settings), settings)


def build_app(settings: Settings | None = None) -> FhirAsgiApp | CorsMiddleware:
    """The ASGI app; the service opens on lifespan startup and closes on shutdown."""
    settings = settings or Settings.from_env()
    service = build_service(settings)
    exports = ExportRunner(service, settings)

    async def read_subscription(id: str, headers: dict[str, str],
                                client: str) -> tuple[int, dict[str, Any] | None]:
        """A websocket's bind: the Subscription as the socket's user may read it."""
        answer = await router.dispatch(FhirRequest("GET", f"Subscription/{id}",
                                                   headers=headers, client=client))
        return answer.status, parse_body(answer.body) if answer.status == 200 else None

    async def owner_gate(owner: str) -> Gate | None:
        """The gate of a Subscription's owner, as their tier is now (None: gone)."""
        if context.guard is None:
            return None
        try:
            return await context.guard.gate_of(owner, "", False)
        except FhirError:
            return None

    notifier = Notifier(service, settings, read_subscription,
                        owner_gate if settings.auth == "smart" else None)
    deadlines = Periodic(OverdueSweep(service).sweep, settings.referral_sweep_seconds,
                         "the referral deadline sweep")
    context = Context(service, settings, exports=exports)
    router = Router(ROUTES, context)
    smart = SmartEndpoints(context) if settings.auth == "smart" else None
    observer = Observer(service.storage, settings.metrics, settings.access_log) \
        if settings.metrics or settings.access_log else None
    ops = Operations(service, observer if settings.metrics else None)

    async def startup() -> None:
        try:
            await service.open()
            if smart is not None:
                await smart.open()
            await exports.open()
            await notifier.open()
            deadlines.start()
        except Exception as error:
            report_failure(error)
            raise

    async def shutdown() -> None:
        if observer is not None:
            observer.close()
        await deadlines.close()
        await notifier.close()
        await exports.close()
        await context.audit.close()
        await service.close()

    routes = {**ops.routes, **Dashboard(settings.base_path).routes,
              **(smart.routes if smart is not None else {})}
    app = FhirAsgiApp(router, settings.base_path, settings.max_body_bytes,
                      startup, shutdown, observer, routes, settings.read_timeout,
                      RateLimiter(settings.rate_limit) if settings.rate_limit > 0 else None,
                      notifier.hub)
    origins = settings.cors_origin_list
    return CorsMiddleware(app, origins) if origins else app
