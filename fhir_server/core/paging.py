"""Stateless paging tokens: an opaque, signed position in a search's order.

The token holds the cursor (sort values and rid of the last or first row of a page) and is
signed with the server's secret together with a fingerprint of the search, so it cannot be
forged or carried over to another search. Parse and render live together here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.search.plan import Cursor


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _signature(self, payload: bytes, fingerprint: str) -> str:
        mac = hmac.new(self.secret, payload + fingerprint.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:12]).decode().rstrip("=")

    def render(self, cursor: Cursor, fingerprint: str) -> str:
        payload = jsonbytes.dumps([list(cursor.values), cursor.rid, cursor.backwards])
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._signature(payload, fingerprint)}"

    def parse(self, token: str, fingerprint: str) -> Cursor:
        body, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            valid = hmac.compare_digest(signature, self._signature(payload, fingerprint))
            values, rid, backwards = orjson.loads(payload) if valid else (None, None, None)
        except (ValueError, orjson.JSONDecodeError):
            valid = False
        if not valid or not isinstance(rid, int) or not isinstance(values, list):
            raise FhirError("The _page token is invalid or belongs to another search", "_page")
        return Cursor(tuple(values), rid, bool(backwards))


def fingerprint(types: tuple[str, ...], used: list[tuple[str, str]]) -> str:
    """What a token is bound to: the types and the criteria (paging parameters aside)."""
    kept = sorted((k, v) for k, v in used if k not in ("_count", "_page"))
    return hashlib.sha256(jsonbytes.dumps([list(types), kept])).hexdigest()[:16]
