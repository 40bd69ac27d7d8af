"""Registered backend clients (SMART Backend Services), kept in the server's storage.

A client has an id, the scopes it may be granted, and its public keys: a JWKS inline or
the URL of one (fetched when a token is asked for, cached, fetched again for an unknown
``kid``). Registered with ``alliance-fhir clients add``; a running server sees changes at
once (it reads the registry on every token request).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from joserfc.jwk import KeySet

from fhir_server import jsonbytes
from fhir_server.auth.jwks import JwksCache, KeysError, public_keys
from fhir_server.auth.scopes import ScopeError, parse_scopes
from fhir_server.storage.port import Storage

KIND = "smart-client"
MAX_PARSED = 1000


class ClientError(KeysError):
    """A registration that cannot be kept (its text says why)."""


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    scope: str  # the scopes it may be granted, space-separated
    jwks: dict[str, Any] | None = None  # its public keys, inline
    jwks_url: str | None = None  # or where they are published
    deidentified_only: bool = False  # bulk export only, always de-identified

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 256 or not self.id.isprintable():
            raise ClientError("a client id is 1 to 256 printable characters")
        try:
            if not parse_scopes(self.scope):
                raise ClientError("give the client at least one system/ scope")
        except ScopeError as error:
            raise ClientError(str(error)) from None
        if (self.jwks is None) == (self.jwks_url is None):
            raise ClientError("give the client a JWKS or the URL of one")
        if self.jwks is not None:
            public_keys(self.jwks)
        elif not self.jwks_url or not self.jwks_url.startswith(("https://", "http://")):
            raise ClientError(f"{self.jwks_url!r} is not an http(s) URL")

    def to_bytes(self) -> bytes:
        return jsonbytes.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, value: bytes) -> Client:
        return cls(**orjson.loads(value))


class ClientRegistry:
    """The clients in storage, and their keys."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._fetched = JwksCache()
        self._parsed: dict[bytes, Client] = {}  # by stored bytes
        self._inline: dict[int, KeySet] = {}  # by id() of a parsed (and kept) Client

    async def add(self, client: Client) -> None:
        await self.storage.put_record(KIND, client.id, client.to_bytes())

    async def get(self, client_id: str) -> Client | None:
        """The client as stored now (parsed once per stored version: a registration
        changed by the CLI is seen at the next call)."""
        value = await self.storage.get_record(KIND, client_id)
        if value is None:
            return None
        client = self._parsed.get(value)
        if client is None:
            if len(self._parsed) >= MAX_PARSED:
                self._parsed.clear()
                self._inline.clear()
            client = self._parsed[value] = Client.from_bytes(value)
            if client.jwks is not None:
                self._inline[id(client)] = public_keys(client.jwks)
        return client

    async def all(self) -> list[Client]:
        return [Client.from_bytes(r.value) for r in await self.storage.list_records(KIND)]

    async def remove(self, client_id: str) -> bool:
        return await self.storage.delete_record(KIND, client_id)

    async def keys(self, client: Client, kid: str | None) -> KeySet:
        """The client's public keys (a JWKS URL fetched as ``JwksCache`` does);
        KeysError when they cannot be had."""
        if client.jwks is not None:
            inline = self._inline.get(id(client))
            return inline if inline is not None else public_keys(client.jwks)
        return await self._fetched.keys(str(client.jwks_url), kid)
