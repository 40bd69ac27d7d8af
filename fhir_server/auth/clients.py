"""Registered backend clients (SMART Backend Services), kept in the server's storage.

A client has an id, the scopes it may be granted, and its public keys: a JWKS inline or
the URL of one (fetched when a token is asked for, cached, fetched again for an unknown
``kid``). Registered with ``alliance-fhir clients add``; a running server sees changes at
once (it reads the registry on every token request).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_server import jsonbytes
from fhir_server.auth.scopes import ScopeError, parse_scopes
from fhir_server.storage.port import Storage

KIND = "smart-client"
KEY_TYPES = ("RSA", "EC")
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
CACHE_SECONDS = 300.0
MAX_PARSED = 1000
REFETCH_AFTER = 10.0  # an unknown kid fetches the URL again, at most this often


class ClientError(ValueError):
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


def public_keys(jwks: Any) -> KeySet:
    """The RSA and EC public keys of a JWKS (or of one JWK); ClientError if there are
    none, or if a private key was given (a client registers public keys only)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) and "keys" in jwks else [jwks]
    if not isinstance(keys, list) or not keys:
        raise ClientError("the JWKS holds no keys")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES:
            raise ClientError("every key of the JWKS must be an RSA or EC JWK")
        if "d" in key:
            raise ClientError("the JWKS holds a private key: register the public key only")
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as error:
        raise ClientError(f"the JWKS cannot be read: {error}") from None


def _fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:
        body = answer.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ClientError(f"the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes")
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ClientError(f"{url} does not hold a JWKS")
    return value


class ClientRegistry:
    """The clients in storage, and their keys."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._fetched: dict[str, tuple[float, KeySet]] = {}
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
        """The client's public keys; a JWKS URL is fetched when not cached, stale, or
        missing ``kid``. ClientError when it cannot be fetched or read."""
        if client.jwks is not None:
            inline = self._inline.get(id(client))
            return inline if inline is not None else public_keys(client.jwks)
        url = str(client.jwks_url)
        now = time.monotonic()
        cached = self._fetched.get(url)
        if cached is not None:
            age, keys = now - cached[0], cached[1]
            known = kid is None or any(k.kid == kid for k in keys.keys)
            if age < CACHE_SECONDS and (known or age < REFETCH_AFTER):
                return keys
        try:
            keys = public_keys(await asyncio.to_thread(_fetch, url))
        except (OSError, orjson.JSONDecodeError) as error:
            raise ClientError(f"the JWKS at {url} cannot be fetched: {error}") from None
        self._fetched[url] = (now, keys)
        return keys
