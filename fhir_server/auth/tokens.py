"""The token endpoint of SMART Backend Services: a client proves who it is with a JWT
signed by its registered key (RFC 7523 ``private_key_jwt``) and gets a short-lived access
token, itself a JWT signed by the server's key. Errors follow RFC 6749 §5.2.
Spec: https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from fhir_server.auth.clients import Client, ClientRegistry
from fhir_server.auth.jwks import KeysError
from fhir_server.auth.oidc import TokenRefused, user_grant
from fhir_server.auth.scopes import Grant, Scope, ScopeError, parse_scopes
from fhir_server.auth.server_key import ALGORITHM
from fhir_server.storage.port import Storage

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_SECONDS = 300  # exp at most five minutes ahead
SKEW_SECONDS = 60  # clocks differ: an exp this far past is still taken
REPLAY_KIND = "assertion-jti"
ISSUER = "alliance-fhir-server"
DEV_ISSUER = "alliance-fhir-server/dev"  # user tokens minted by ``alliance-fhir token``
MAX_CACHED = 10_000


class OAuthError(Exception):
    """An RFC 6749 error answer: ``error`` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400,
                 client_id: str = "") -> None:
        self.error, self.description, self.status = error, description, status
        self.client_id = client_id
        super().__init__(f"{error}: {description}")


@dataclass(frozen=True, slots=True)
class Issued:
    grant: Grant
    token: str
    expires_in: int

    def answer(self) -> dict[str, Any]:
        return {"access_token": self.token, "token_type": "bearer",
                "expires_in": self.expires_in, "scope": self.grant.scope_text}


class TokenService:
    """Issues access tokens to registered clients and verifies them on requests."""

    def __init__(self, storage: Storage, key: ECKey, lifetime: int = 300,
                 clock: Callable[[], float] = time.time, dev_tokens: bool = False) -> None:
        self.storage, self.key, self.lifetime, self.clock = storage, key, lifetime, clock
        self.dev_tokens = dev_tokens
        self.clients = ClientRegistry(storage)
        self._verified: dict[str, tuple[float, Grant]] = {}

    async def issue(self, form: dict[str, str], token_url: str) -> Issued:
        """An access token for a ``client_credentials`` request; OAuthError if refused."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be "
                                                f"{ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        client = await self._client_of(assertion)
        claims = await self._verified_claims(assertion, client)
        await self._check_claims(claims, client, token_url)
        scopes = self._granted(form.get("scope"), client)
        now = int(self.clock())
        text = " ".join(form["scope"].split()) if form.get("scope") else client.scope
        grant = Grant(client.id, tuple(scopes), text, client.deidentified_only)
        token = jwt.encode(
            {"alg": ALGORITHM, "kid": self.key.kid},
            {"iss": ISSUER, "sub": client.id, "scope": text, "iat": now,
             "exp": now + self.lifetime, "jti": os.urandom(12).hex(),
             "deidentified_only": client.deidentified_only},
            self.key, algorithms=[ALGORITHM])
        return Issued(grant, token, self.lifetime)

    async def _client_of(self, assertion: str) -> Client:
        try:
            payload = orjson.loads(jws.extract_compact(assertion.encode()).payload)
        except (JoseError, ValueError, orjson.JSONDecodeError):
            raise OAuthError("invalid_client", "client_assertion is not a signed JWT",
                             401) from None
        client_id = payload.get("iss") if isinstance(payload, dict) else None
        client = await self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            raise OAuthError("invalid_client", f"no client {client_id!r} is registered", 401,
                             str(client_id or ""))
        return client

    async def _verified_claims(self, assertion: str, client: Client) -> dict[str, Any]:
        kid = jws.extract_compact(assertion.encode()).headers().get("kid")
        try:
            keys = await self.clients.keys(client, kid)
            token = jwt.decode(assertion, keys, algorithms=ASSERTION_ALGORITHMS)
        except KeysError as error:
            raise OAuthError("invalid_client", str(error), 401, client.id) from None
        except JoseError as error:
            raise OAuthError("invalid_client", "the assertion is not signed by a registered "
                             f"key of {client.id} with RS384 or ES384 ({error.error})", 401,
                             client.id) from None
        return dict(token.claims)

    async def _check_claims(self, claims: dict[str, Any], client: Client,
                            token_url: str) -> None:
        def refuse(why: str) -> OAuthError:
            return OAuthError("invalid_grant", why, 400, client.id)
        if claims.get("sub") != client.id:
            raise refuse("the assertion's sub must be the client id, as its iss")
        audience = claims.get("aud")
        if token_url not in (audience if isinstance(audience, list) else [audience]):
            raise refuse(f"the assertion's aud must be the token URL {token_url}")
        exp, now = claims.get("exp"), self.clock()
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise refuse("the assertion needs a numeric exp")
        if exp < now - SKEW_SECONDS:
            raise refuse("the assertion has expired")
        if exp > now + MAX_ASSERTION_SECONDS + SKEW_SECONDS:
            raise refuse(f"the assertion's exp is more than {MAX_ASSERTION_SECONDS} s ahead")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise refuse("the assertion needs a jti")
        expires = int((max(exp, now) + SKEW_SECONDS) * 1000)
        if not await self.storage.put_record(REPLAY_KIND, f"{client.id} {jti}", b"", expires,
                                             only_new=True):
            raise refuse("the assertion's jti was used before: a new assertion is needed")

    @staticmethod
    def _granted(requested: str | None, client: Client) -> list[Scope]:
        allowed = parse_scopes(client.scope)
        if not requested:
            return allowed
        try:
            asked = parse_scopes(requested)
        except ScopeError as error:
            raise OAuthError("invalid_scope", str(error), 400, client.id) from None
        if not asked:
            raise OAuthError("invalid_scope", "ask for system/ scopes", 400, client.id)
        refused = [w for w in requested.split()
                   if "/" in w and not any(a.covers(Scope.parse(w)) for a in allowed)]
        if refused:
            raise OAuthError("invalid_scope", f"{client.id} may not be granted "
                             f"{' '.join(refused)}; it may have {client.scope}", 400,
                             client.id)
        return asked

    def verify(self, token: str) -> Grant | None:
        """The grant of a valid, unexpired access token of this server (a development
        user token only when they are accepted), else None."""
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None:
            return cached[1] if cached[0] > now else None
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM]).claims
            expires = float(claims["exp"])
            if claims.get("iss") == DEV_ISSUER and self.dev_tokens:
                grant = user_grant(claims, "alliance-fhir token")
            elif claims.get("iss") == ISSUER:
                grant = Grant(str(claims.get("sub")), tuple(parse_scopes(str(claims["scope"]))),
                              str(claims["scope"]), bool(claims.get("deidentified_only")))
            else:
                return None
        except (JoseError, ScopeError, TokenRefused, KeyError, ValueError, TypeError):
            return None
        if expires <= now:
            return None
        if len(self._verified) >= MAX_CACHED:
            self._verified.clear()
        self._verified[token] = (expires, grant)
        return grant


def mint_user_token(key: ECKey, user: str, scope: str, patient: str = "",
                    lifetime: int = 3600) -> str:
    """A development user token signed by the server's key (``alliance-fhir token``)."""
    user_grant({"fhirUser": user, "scope": scope, "patient": patient or None}, "")
    now = int(time.time())
    claims = {"iss": DEV_ISSUER, "sub": user, "fhirUser": user, "scope": scope, "iat": now,
              "exp": now + lifetime, **({"patient": patient} if patient else {})}
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid}, claims, key, algorithms=[ALGORITHM])
