"""Public keys published at a URL (a JWKS): fetched when first needed, cached, and fetched
again when stale or when a token names a ``kid`` the cached set lacks (a rotated key).
Used for backend clients' registered JWKS URLs and for OpenID Connect issuers."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

KEY_TYPES = ("RSA", "EC")
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
CACHE_SECONDS = 300.0
REFETCH_AFTER = 10.0  # an unknown kid fetches the URL again, at most this often


class KeysError(ValueError):
    """Keys that cannot be had or read (its text says why)."""


def public_keys(jwks: Any) -> KeySet:
    """The RSA and EC public keys of a JWKS (or of one JWK); KeysError if there are none,
    or if a private key was given (only public keys are taken)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) and "keys" in jwks else [jwks]
    if not isinstance(keys, list) or not keys:
        raise KeysError("the JWKS holds no keys")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES:
            raise KeysError("every key of the JWKS must be an RSA or EC JWK")
        if "d" in key:
            raise KeysError("the JWKS holds a private key: register the public key only")
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as error:
        raise KeysError(f"the JWKS cannot be read: {error}") from None


def fetch_json(url: str) -> dict[str, Any]:
    """A JSON object from an http(s) URL (at most ``MAX_JWKS_BYTES``)."""
    if not url.startswith(("https://", "http://")):
        raise KeysError(f"{url!r} is not an http(s) URL")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:
        body = answer.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise KeysError(f"the document at {url} is larger than {MAX_JWKS_BYTES} bytes")
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise KeysError(f"{url} does not hold a JSON object")
    return value


class JwksCache:
    """Key sets by URL."""

    def __init__(self) -> None:
        self._fetched: dict[str, tuple[float, KeySet]] = {}

    async def keys(self, url: str, kid: str | None) -> KeySet:
        """The keys at ``url``; fetched when not cached, stale, or missing ``kid``.
        KeysError when they cannot be fetched or read."""
        now = time.monotonic()
        cached = self._fetched.get(url)
        if cached is not None:
            age, keys = now - cached[0], cached[1]
            known = kid is None or any(k.kid == kid for k in keys.keys)
            if age < CACHE_SECONDS and (known or age < REFETCH_AFTER):
                return keys
        try:
            keys = public_keys(await asyncio.to_thread(fetch_json, url))
        except (OSError, orjson.JSONDecodeError) as error:
            raise KeysError(f"the JWKS at {url} cannot be fetched: {error}") from None
        self._fetched[url] = (now, keys)
        return keys
