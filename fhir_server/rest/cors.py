"""CORS for configured origins (``FHIR_CORS_ORIGINS``), as a plain ASGI middleware.

Spec: https://fetch.spec.whatwg.org/#http-cors-protocol. A preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) from an allowed origin is answered here
with 204; other requests from it get ``Access-Control-Allow-Origin`` and the FHIR headers a
browser client needs to read exposed. Origins not listed get no CORS headers at all, so a
browser keeps them out. Nothing is allowed unless configured.
"""

from __future__ import annotations

from typing import Any

from fhir_server.rest.asgi import Receive, Scope, Send

METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
EXPOSED = ("Location, Content-Location, ETag, Last-Modified, X-Request-Id, X-Progress, "
           "Retry-After")
MAX_AGE = "600"


class CorsMiddleware:
    """Wraps the ASGI app; ``origins`` are exact origins (``https://his.example``) or ``*``."""

    def __init__(self, app: Any, origins: list[str]) -> None:
        self.app = app
        self.any = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins if o != "*")
        self.startup, self.shutdown = app.startup, app.shutdown

    def _allowed(self, origin: str) -> bool:
        return self.any or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None or not self._allowed(origin):
            await self.app(scope, receive, send)
            return
        allow = [(b"access-control-allow-origin", origin.encode("latin-1")),
                 (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            requested = headers.get("access-control-request-headers", "")
            await send({"type": "http.response.start", "status": 204, "headers": [
                *allow, (b"access-control-allow-methods", METHODS.encode()),
                (b"access-control-allow-headers", requested.encode("latin-1")),
                (b"access-control-max-age", MAX_AGE.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [
                    *message.get("headers", []), *allow,
                    (b"access-control-expose-headers", EXPOSED.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
