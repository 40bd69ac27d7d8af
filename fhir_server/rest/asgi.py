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
from fhir_server.rest.ops import OpsHandler
from fhir_server.rest.ratelimit import RateLimiter
from fhir_server.rest.render import error_response, outcome_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.router import Router
from fhir_server.subscriptions.websocket import WebsocketHub

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
log = logging.getLogger("fhir_server")
# JSON answers load nothing and may not be framed; a page that needs more sets its own.
FILE_CHUNK = 1 << 20
DEFAULT_POLICY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class FhirAsgiApp:
    """ASGI application serving the FHIR API under ``base_path``."""

    def __init__(self, router: Router, base_path: str, max_body_bytes: int,
                 startup: Hook | None = None, shutdown: Hook | None = None,
                 observer: Observer | None = None,
                 ops: dict[tuple[str, str], OpsHandler] | None = None, read_timeout: float = 30.0,
                 limiter: RateLimiter | None = None,
                 websockets: WebsocketHub | None = None) -> None:
        self.router = router
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.limiter = limiter  # per-client requests per second, on FHIR paths
        self.startup, self.shutdown = startup, shutdown
        self.observer = observer
        self.ops = ops or {}
        self.websockets = websockets  # the Subscription websocket channel

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
                    else self._ops_name(scope["path"])
                self.observer.request(request_id, scope["method"], interaction,
                                      request.resource_type if request else "",
                                      response.status, time.perf_counter() - started)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            if self.websockets is not None \
                    and scope["path"] in (f"{self.base_path}/websocket", "/websocket"):
                await self.websockets.serve(scope, receive, send)
            else:  # refused at the handshake (403)
                await receive()
                await send({"type": "websocket.close", "code": 1008})

    async def _handle(self, scope: Scope, receive: Receive, headers: dict[str, str],
                      ) -> tuple[FhirResponse, FhirRequest | None]:
        path: str = scope["path"]
        base = self.base_path
        outside = bool(base) and path != base and not path.startswith(base + "/")
        method = "GET" if outside and scope["method"] == "HEAD" else scope["method"]
        ops = self.ops.get((method, path)) if outside else None
        if outside and ops is None:
            error = NotFound(f"No FHIR endpoint at {path}; the FHIR base is {base}")
            return outcome_response(404, error.issues), None
        address = str((scope.get("client") or ("?",))[0])
        try:
            if self.limiter is not None and (ops is None or method == "POST"):
                self.limiter.check(address)  # FHIR requests and token requests
            body = await self._body(receive, headers) if method != "GET" else b""
        except FhirError as error:
            return error_response(error), None
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
        request = FhirRequest(
            method=method,
            path=path[len(base):].strip("/") if ops is None else path,
            query=parse_qsl(scope["query_string"].decode("utf-8", "replace"),
                            keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{base}",
            client=address,
        )
        if ops is not None:
            return await ops(request), None
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

    def _ops_name(self, path: str) -> str:
        """The name of a request outside the FHIR routes (``health``, ``metrics``, ``auth``)."""
        known = any(path == p for _, p in self.ops)
        return path.strip("/").split("/", 1)[0].lstrip(".") if known else "unknown"

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


async def _send(send: Send, response: FhirResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    size = response.file.stat().st_size if response.file is not None else len(response.body)
    headers.append((b"content-length", str(size).encode()))
    headers.append((b"x-content-type-options", b"nosniff"))
    if not any(k == "content-security-policy" for k, _ in response.headers):
        headers.append(DEFAULT_POLICY)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.file is None:
        await send({"type": "http.response.body", "body": response.body})
        return
    with open(response.file, "rb") as file:  # streamed: files are as large as exports
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(file.read, min(FILE_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
    if left > 0:  # the file shrank while it was sent: end the body all the same
        await send({"type": "http.response.body", "body": b""})
