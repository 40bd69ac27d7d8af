"""Routing as data: method, path pattern, interaction code, handler.

Patterns are ``/``-separated segments: literal, ``{name}`` (any segment) or ``{$name}`` (an
operation: a segment starting with ``$``). Among the routes that match, the one with most
literal segments wins, then the one with most operation segments (so ``Patient/_history``
and ``Patient/{$operation}`` beat ``Patient/{id}``).
Errors are caught once here and become OperationOutcome responses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fhir_server.auth.access import PUBLIC
from fhir_server.core.errors import FhirError, MethodNotAllowed, ServiceUnavailable
from fhir_server.core.gate import current_audit, current_gate
from fhir_server.outcome import Issue
from fhir_server.rest.access_audit import SELF_AUDITED, RequestAudit
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_accept
from fhir_server.rest.render import error_response, outcome_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.storage.port import StorageUnavailable

Handler = Callable[[Context, FhirRequest, dict[str, str]], Awaitable[FhirResponse]]
log = logging.getLogger("fhir_server")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    interactions: tuple[str, ...]  # FHIR codes: ("read",), ("transaction", "batch"), ...
    handler: Handler

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.pattern.split("/") if s)

    @property
    def specificity(self) -> tuple[int, int]:
        literals = sum(1 for s in self.segments if not s.startswith("{"))
        return literals, sum(1 for s in self.segments if s.startswith("{$"))


LITERAL, ARGUMENT, OPERATION = "literal", "argument", "operation"
Segment = tuple[str, str]  # (kind, literal text or argument name)


def _compile(segments: tuple[str, ...]) -> tuple[Segment, ...]:
    """A pattern's segments as (kind, text), parsed once: matching runs on every request."""
    return tuple((OPERATION, s[2:-1]) if s.startswith("{$") else
                 (ARGUMENT, s[1:-1]) if s.startswith("{") else (LITERAL, s)
                 for s in segments)


class Router:
    """Dispatches a FhirRequest to the best matching route."""

    def __init__(self, routes: list[Route], context: Context) -> None:
        self.routes = routes
        self.context = context
        context.router = self
        self._table: dict[tuple[str, int], list[tuple[tuple[Segment, ...], Route]]] = {}
        for route in sorted(routes, key=lambda r: r.specificity, reverse=True):
            key = (route.method, len(route.segments))
            self._table.setdefault(key, []).append((_compile(route.segments), route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = path.split("/")
        if "" in parts:
            parts = [p for p in parts if p]
        for segments, route in self._table.get((method, len(parts)), ()):
            args: dict[str, str] = {}
            for (kind, text), part in zip(segments, parts, strict=True):
                if kind is LITERAL:
                    if part != text:
                        break
                elif kind is OPERATION and part[:1] != "$":
                    break
                else:
                    args[text] = part
            else:
                return route, args
        return None

    async def dispatch(self, request: FhirRequest) -> FhirResponse:
        try:
            return await self._dispatch(request)
        except StorageUnavailable as error:  # (also when auditing a refusal found it gone)
            log.warning("storage unavailable on %s %s: %s", request.method, request.path, error)
            return error_response(ServiceUnavailable(
                "The database cannot be reached; the request was not carried out. Try again "
                "shortly"))

    async def _dispatch(self, request: FhirRequest) -> FhirResponse:
        try:
            check_accept(request)
            found = self.match(request.method, request.path)
            if found is None:
                raise self._no_route(request)
            route, args = found
            request.interaction = route.interactions[0]
            gate = None
            if self.context.guard is not None:
                gate = await self.context.guard.check(request, args)
            rtype = args.get("type", "")
            if self.context.service.registry.is_supported(rtype):
                request.resource_type = rtype
            if "id" in args and request.interaction in ("read", "vread", "history-instance"):
                request.touched.append(f"{rtype}/{args['id']}")  # (also when refused)
            audit = self._auditor(request)
            gate_token, audit_token = current_gate.set(gate), current_audit.set(audit)
            try:
                response = await route.handler(self.context, request, args)
            finally:
                current_gate.reset(gate_token)
                current_audit.reset(audit_token)
            if audit is not None and not audit.committed:
                await self.context.record(audit.answered(response.status))
            elif audit is not None:
                self.context.audit.noted()
            return response
        except FhirError as error:
            audit = self._auditor(request)
            if audit is not None:  # refusals (401, 403) and failures are audited too
                await self.context.record(audit.answered(error.status, str(error)))
            return error_response(error)
        except StorageUnavailable:
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return outcome_response(500, [Issue("exception", "Internal server error",
                                                severity="fatal")])

    def _auditor(self, request: FhirRequest) -> RequestAudit | None:
        """The audit of a request when every access is audited (auth on)."""
        if not self.context.audit_access or not request.interaction \
                or request.interaction in PUBLIC or request.interaction in SELF_AUDITED:
            return None
        return RequestAudit(request)

    def _no_route(self, request: FhirRequest) -> FhirError:
        parts = [p for p in request.path.split("/") if p]
        if any(self.match(m, request.path) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")):
            return MethodNotAllowed(f"{request.method} is not allowed on /{request.path}")
        return FhirError(f"No FHIR interaction answers {request.method} /{'/'.join(parts)}")
