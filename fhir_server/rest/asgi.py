"""The ASGI edge: scope and body in, FhirRequest to the router, FhirResponse out.

A plain ASGI class (no framework on the hot path): it strips the FHIR base path, enforces
the body size limit (413) before reading more than allowed, and runs the lifespan hooks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.core.errors import FhirError, NotFound, PayloadTooLarge, RequestTimeout
from fhir_server.rest.memory import release_after
from fhir_server.rest.observe import Observer
from fhir_server.rest.ops import OPS_PATHS, OpsHandler
from fhir_server.rest.ratelimit import RateLimiter
from fhir_server.rest.render import error_response, outcome_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.router import Router

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
log = logging.getLogger("fhir_server")
# JSON answers load nothing and may not be framed; a page that needs more sets its own.
DEFAULT_POLICY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class FhirAsgiApp:
    """ASGI application serving the FHIR API under ``base_path``."""

    def __init__(self, router: Router, base_path: str, max_body_bytes: int,
                 startup: Hook | None = None, shutdown: Hook | None = None,
                 observer: Observer | None = None,
                 ops: dict[str, OpsHandler] | None = None, read_timeout: float = 30.0,
                 limiter: RateLimiter | None = None) -> None:
        self.router = router
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.limiter = limiter  # per-client requests per second, on FHIR paths
        self.startup, self.shutdown = startup, shutdown
        self.observer = observer
        self.ops = ops or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            started = time.perf_counter()
            headers: dict[str, str] = {}
            for raw_key, raw_value in scope["headers"]:
                key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            request_id = _request_id(headers.get("x-request-id"))
            response, request = await self._handle(scope, receive, headers)
            response.headers.append(("x-request-id", request_id))
            await _send(send, response)
            if request is not None:
                await release_after(len(request.body))
            if self.observer is not None:
                interaction = (request.interaction or "unknown") if request \
                    else _ops_name(scope["path"])
                self.observer.request(request_id, scope["method"], interaction,
                                      request.resource_type if request else "",
                                      response.status, time.perf_counter() - started)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _handle(self, scope: Scope, receive: Receive, headers: dict[str, str],
                      ) -> tuple[FhirResponse, FhirRequest | None]:
        path: str = scope["path"]
        base = self.base_path
        if base and path != base and not path.startswith(base + "/"):
            ops = self.ops.get(path)
            if ops is not None and scope["method"] in ("GET", "HEAD"):
                return await ops(), None
            error = NotFound(f"No FHIR endpoint at {path}; the FHIR base is {base}")
            return outcome_response(404, error.issues), None
        try:
            if self.limiter is not None:
                self.limiter.check((scope.get("client") or ("?",))[0])
            body = await self._body(receive, headers) if scope["method"] != "GET" else b""
        except FhirError as error:
            return error_response(error), None
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
        request = FhirRequest(
            method=scope["method"],
            path=path[len(base):].strip("/"),
            query=parse_qsl(scope["query_string"].decode("utf-8", "replace"),
                            keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{base}",
        )
        return await self.router.dispatch(request), request

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The body ({declared} bytes) exceeds the limit of {limit}")
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise RequestTimeout(f"The request body paused for more than "
                                     f"{self.read_timeout:g} s") from None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            hook = self.startup if kind == "lifespan.startup" else self.shutdown
            try:
                if hook is not None:
                    await hook()
            except Exception as error:
                log.exception("lifespan %s failed", kind)
                await send({"type": kind + ".failed", "message": str(error)})
                return
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return


def _request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a new random one."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable() \
            and " " not in given:
        return given
    return os.urandom(12).hex()


def _ops_name(path: str) -> str:
    """The interaction name of a request outside the FHIR routes (``health``, ``metrics``)."""
    return path.strip("/").split("/", 1)[0] if path in OPS_PATHS else "unknown"


async def _send(send: Send, response: FhirResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.append((b"x-content-type-options", b"nosniff"))
    if not any(k == "content-security-policy" for k, _ in response.headers):
        headers.append(DEFAULT_POLICY)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
