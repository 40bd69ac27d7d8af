"""A real OpenID Connect issuer for the tests: a loopback HTTP server publishing its
discovery document and JWKS; the tests sign users' tokens with its private keys."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from loopback import serving


@dataclass
class Issuer:
    url: str = ""
    audience: str = "http://testserver/fhir"
    rsa: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, auto_kid=True))
    ec: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", auto_kid=True))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.rsa.as_dict(private=False), "alg": "RS256"},
                         {**self.ec.as_dict(private=False), "alg": "ES256"}]}

    def token(self, user: str | None, scope: str = "user/*.cruds", *, algorithm: str = "RS256",
              exp_in: float = 300, key: RSAKey | ECKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.url, "sub": "u1", "aud": self.audience,
                                "iat": now, "exp": int(now + exp_in), "scope": scope,
                                "azp": "his-web", **claims}
        if user is not None:
            body["fhirUser"] = user
        signer = key or (self.rsa if algorithm.startswith("RS") else self.ec)
        return jwt.encode({"alg": algorithm, "kid": signer.kid}, body, signer,
                          algorithms=[algorithm])


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()

    class Documents(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = orjson.dumps({"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
            elif self.path == "/jwks":
                body = orjson.dumps(issuer.jwks())
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Documents)
    issuer.url = f"http://127.0.0.1:{server.server_port}"
    with serving(server):
        yield issuer
