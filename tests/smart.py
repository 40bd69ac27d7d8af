"""Test support for SMART Backend Services: real keys, registered clients, signed
assertions and the tokens they buy."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_server.cli import main

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = "http://testserver/auth/token"


@dataclass
class BackendClient:
    """A client with its own key pair (RS384 or ES384)."""

    id: str
    algorithm: str = "RS384"
    key: RSAKey | ECKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, auto_kid=True) if self.algorithm.startswith("RS") \
            else ECKey.generate_key("P-384", auto_kid=True)

    def public_jwks(self) -> dict:
        return {"keys": [{**self.key.as_dict(private=False), "alg": self.algorithm}]}

    def register(self, storage: str, folder: Path, scope: str, *extra: str) -> None:
        path = folder / f"{self.id}.jwks.json"
        path.write_bytes(orjson.dumps(self.public_jwks()))
        assert main(["clients", "add", self.id, "--jwks", str(path), "--scope", scope,
                     "--storage", storage, *extra]) == 0

    def assertion(self, aud: str = TOKEN_URL, exp_in: float = 240, jti: str | None = None,
                  key: RSAKey | ECKey | None = None, algorithm: str | None = None,
                  **claims: object) -> str:
        now = int(time.time())
        body = {"iss": self.id, "sub": self.id, "aud": aud, "exp": int(now + exp_in),
                "jti": jti or os.urandom(8).hex(), **claims}
        alg = algorithm or self.algorithm
        signer = key or self.key
        return jwt.encode({"alg": alg, "kid": signer.kid, "typ": "JWT"}, body, signer,
                          algorithms=[alg])

    def form(self, scope: str | None = "system/*.rs", **assertion: object) -> dict:
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(**assertion)}  # type: ignore[arg-type]
        if scope is not None:
            form["scope"] = scope
        return form
