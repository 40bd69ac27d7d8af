"""uvicorn's HTTP protocol with a deadline for a request's headers.

uvicorn closes idle keep-alive connections, but a connection that opens and sends nothing,
or half a request's headers, is kept open for ever: the open-file limit would be the only
bound (slowloris). This protocol closes a connection whose request headers are not complete
within ``FHIR_HEADER_TIMEOUT`` seconds of the request's first byte (or of the opening).
Body reads have their own deadline in the ASGI app (``FHIR_READ_TIMEOUT``). Built on uvicorn's
``HttpToolsProtocol`` (its ``connection_made``, ``on_message_begin``,
``on_headers_complete`` and ``connection_lost`` hooks), selected with ``uvicorn.run(http=…)``.
"""

from __future__ import annotations

import asyncio
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fhir_server.config import Settings


@cache
def header_timeout() -> float:
    return Settings.from_env().header_timeout


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Closes connections that take too long to send a request's headers."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing

    def on_message_begin(self) -> None:
        self._arm()  # each request, also the next one on a kept-alive connection
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(header_timeout(), self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
