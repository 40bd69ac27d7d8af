"""The R4 websocket channel: a client connects to ``[base]/websocket`` (or ``/websocket``),
sends ``bind <id>`` for each Subscription it wants, the server answers ``bound <id>``, and
then ``ping <id>`` whenever that Subscription is triggered.

Binding reads the Subscription through the FHIR API with the connection's own headers
(``GET Subscription/<id>``): with auth on, the handshake carries ``Authorization: Bearer``
and a user binds only what they may read. A Subscription that is unknown, not active or of
another channel answers ``error <id> <why>``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# (subscription id, the handshake's headers, the client's address) -> (status, resource)
Reader = Callable[[str, dict[str, str], str], Awaitable[tuple[int, dict[str, Any] | None]]]


class Connection:
    """One client's socket: sends are serialised."""

    def __init__(self, send: Send) -> None:
        self._send, self._lock = send, asyncio.Lock()

    async def text(self, message: str) -> None:
        async with self._lock:
            await self._send({"type": "websocket.send", "text": message})


class WebsocketHub:
    """The sockets bound on this worker, by Subscription id."""

    def __init__(self, read: Reader) -> None:
        self.read = read
        self.bound: dict[str, set[Connection]] = {}
        # called before each binding (the notifier follows history for the sockets from
        # the first one on, and reads the active Subscriptions again)
        self.binding: Callable[[], Awaitable[None]] | None = None

    def watched(self) -> set[str]:
        return {id for id, sockets in self.bound.items() if sockets}

    async def ping(self, subscription_id: str) -> None:
        for connection in list(self.bound.get(subscription_id, ())):
            with contextlib.suppress(Exception):  # (a socket closing meanwhile)
                await connection.text(f"ping {subscription_id}")

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One websocket connection, until the client goes."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or ()}
        client = str((scope.get("client") or ("?",))[0])
        connection, mine = Connection(send), set()
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = (message.get("text") or (message.get("bytes") or b"").decode()).strip()
                command, _, id = text.partition(" ")
                if command != "bind" or not id.strip():
                    await connection.text(f"error {text[:64]!r} is not 'bind <id>'")
                    continue
                id = id.strip()
                why = await self._refusal(id, headers, client)
                if why:
                    await connection.text(f"error {id} {why}")
                    continue
                if self.binding is not None:
                    await self.binding()
                self.bound.setdefault(id, set()).add(connection)
                mine.add(id)
                await connection.text(f"bound {id}")
        finally:
            for id in mine:
                self.bound.get(id, set()).discard(connection)

    async def _refusal(self, id: str, headers: dict[str, str], client: str) -> str | None:
        status, resource = await self.read(id, headers, client)
        if status != 200 or resource is None:
            return {401: "unauthorized", 403: "forbidden"}.get(status, "unknown subscription")
        if (resource.get("channel") or {}).get("type") != "websocket":
            return "is not a websocket subscription"
        if resource.get("status") != "active":
            return f"is {resource.get('status')}, not active"
        return None


def parse_body(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
