"""What a Subscription must be to be stored (https://hl7.org/fhir/R4/subscription.html).

Clients submit a Subscription ``requested`` (or ``off``); once its criteria parse and its
channel can be served, the server stores it ``active`` (a client re-submitting an active
one keeps it active; ``error`` is the server's to set, and a client may submit
``requested`` again to revive an errored one). Criteria are a search without the base
(``Task?owner=Organization/x&status=requested``), parsed by the search engine that later
evaluates them: an unknown type or parameter answers 400. Channels: ``rest-hook`` (an
http(s) endpoint the server can connect to now: 422 otherwise) and ``websocket`` (the
client binds to the server's ``/websocket``); ``email``, ``sms`` and ``message`` answer
422. The payload is none or ``application/fhir+json``; each ``header`` is
``Name: value``. With auth on, the server records who subscribed (extension
``subscription-owner``): notifications carry only what that user may read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

from fhir_server.core.errors import FhirError, Unprocessable
from fhir_server.core.gate import Actor
from fhir_server.core.search import Searcher
from fhir_server.search.plan import Query
from fhir_server.types import Resource

OWNER = "http://alliance-fhir.org/fhir/StructureDefinition/subscription-owner"
CHANNELS = ("rest-hook", "websocket")
PAYLOADS = ("application/fhir+json", "application/json")
PROBE_SECONDS = 3.0
Probe = Callable[[str], Awaitable[str | None]]  # endpoint -> why it is unreachable, or None


async def tcp_probe(endpoint: str) -> str | None:
    """Whether a TCP connection to the endpoint's host and port opens now."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port),
                                           PROBE_SECONDS)
    except (OSError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    writer.close()
    return None


def parse_criteria(searcher: Searcher, criteria: object, is_supported: Callable[[str], bool],
                   where: str = "Subscription.criteria") -> Query:
    """The search plan of a Subscription's criteria (400 when they are no search)."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise FhirError("criteria must be a search such as Task?status=requested", where)
    path, _, query = criteria.strip().lstrip("/").partition("?")
    if "/" in path or not is_supported(path):
        raise FhirError(f"criteria must start with a served resource type, not {path!r}",
                        where)
    try:
        return searcher.parse((path,), parse_qsl(query, keep_blank_values=True),
                              strict=True).query
    except FhirError as error:
        raise FhirError(f"criteria {criteria!r}: {error}", where) from None


def headers_of(subscription: Resource) -> list[tuple[str, str]]:
    """The channel's ``Name: value`` headers as pairs."""
    found = []
    for header in (subscription.get("channel") or {}).get("header") or ():
        name, _, value = str(header).partition(":")
        found.append((name.strip(), value.strip()))
    return found


class SubscriptionRules:
    """Checks a Subscription write and returns what to store."""

    def __init__(self, searcher: Searcher, is_supported: Callable[[str], bool],
                 probe: Probe = tcp_probe) -> None:
        self.searcher, self.is_supported, self.probe = searcher, is_supported, probe

    async def checked(self, subscription: Resource, stored: Resource | None, where: str,
                      actor: Actor | None) -> Resource:
        status = subscription.get("status")
        if status == "error" and (stored is None or stored.get("status") != "error"):
            raise Unprocessable("Only the server sets a Subscription in error; submit it "
                                "requested (or off)", f"{where}.status")
        parse_criteria(self.searcher, subscription.get("criteria"), self.is_supported,
                       f"{where}.criteria")
        channel = subscription.get("channel") or {}
        kind = channel.get("type")
        if kind not in CHANNELS:
            raise Unprocessable(f"The channel type {kind!r} is not served here; use "
                                f"{' or '.join(CHANNELS)}", f"{where}.channel.type")
        payload = channel.get("payload")
        if payload is not None and payload not in PAYLOADS:
            raise Unprocessable(f"The payload {payload!r} is not served here; use "
                                "application/fhir+json, or none", f"{where}.channel.payload")
        for index, (name, _) in enumerate(headers_of(subscription)):
            if not name or any(c in name for c in " \t\r\n"):
                raise FhirError("Each header must read 'Name: value'",
                                f"{where}.channel.header[{index}]")
        endpoint = channel.get("endpoint")
        if kind == "rest-hook" or endpoint is not None:
            await self._check_endpoint(endpoint, kind, status, f"{where}.channel.endpoint")
        kept = {**subscription, "extension": [
            e for e in subscription.get("extension") or () if e.get("url") != OWNER]}
        if actor is not None:
            kept["extension"].append({"url": OWNER, "valueReference": {
                "reference": actor.reference}})
        if not kept["extension"]:
            del kept["extension"]
        if status in ("requested", "active"):
            kept["status"] = "active"
            kept.pop("error", None)
        return kept

    async def _check_endpoint(self, endpoint: object, kind: str, status: object,
                              where: str) -> None:
        schemes = ("http", "https") if kind == "rest-hook" else ("http", "https", "ws", "wss")
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise FhirError(f"A {kind} endpoint must be an absolute {'/'.join(schemes)} URL, "
                            f"not {endpoint!r}", where)
        if kind == "rest-hook" and status != "off":
            why = await self.probe(str(endpoint))
            if why is not None:
                raise Unprocessable(f"The endpoint {endpoint} cannot be reached now ({why}); "
                                    "start the receiver first, or submit the Subscription "
                                    "off", where)
