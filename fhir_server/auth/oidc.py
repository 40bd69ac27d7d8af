"""Users' access tokens from the alliance's identity provider (统一身份认证, OpenID Connect):
the server is a resource server. A token is a JWT signed (RS256, RS384, ES256 or ES384) by a
key of a configured issuer's JWKS; it carries ``fhirUser`` (the user's ``PractitionerRole``
or ``Practitioner``, an absolute URL as SMART defines it or ``Type/id``) and ``scope`` with
SMART ``user/`` and ``patient/`` scopes (``patient/`` ones bound to the ``patient`` claim).
Spec: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError

from fhir_server.auth.jwks import JwksCache, KeysError, fetch_json
from fhir_server.auth.scopes import Grant, ScopeError, parse_scopes

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
USER_TYPES = ("PractitionerRole", "Practitioner")
SKEW_SECONDS = 60  # clocks differ: a token this far past exp (or before nbf) is taken
MAX_CACHED = 10_000


class TokenRefused(ValueError):
    """A user token that is not accepted (its text says why, for the 401 answer)."""


@dataclass(frozen=True, slots=True)
class Issuer:
    url: str
    jwks_url: str  # empty: from the issuer's /.well-known/openid-configuration


def issuers_of(urls: str, jwks_urls: str) -> list[Issuer]:
    """Issuers from comma-separated settings (a JWKS URL for each, in order, or none)."""
    issuers = [u.strip() for u in urls.split(",") if u.strip()]
    keys = [u.strip() for u in jwks_urls.split(",")] if jwks_urls.strip() else []
    return [Issuer(url, keys[i] if i < len(keys) else "") for i, url in enumerate(issuers)]


def peek_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, not yet verified (to choose who verifies it)."""
    try:
        found = jws.extract_compact(token.encode())
        claims = orjson.loads(found.payload)
    except (JoseError, ValueError, orjson.JSONDecodeError):
        raise TokenRefused("the access token is not a signed JWT") from None
    if not isinstance(claims, dict):
        raise TokenRefused("the access token's payload is not a JSON object")
    return found.headers(), claims


def user_reference(fhir_user: Any) -> str:
    """``Type/id`` of a ``fhirUser`` claim (absolute or relative)."""
    if not isinstance(fhir_user, str) or not fhir_user:
        raise TokenRefused("the access token has no fhirUser claim")
    parts = fhir_user.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in USER_TYPES or not parts[-1]:
        raise TokenRefused(f"fhirUser {fhir_user!r} names no PractitionerRole or "
                           "Practitioner")
    return f"{parts[-2]}/{parts[-1]}"


def user_grant(claims: dict[str, Any], client_id: str) -> Grant:
    """What a user token's verified claims allow."""
    user = user_reference(claims.get("fhirUser"))
    text = claims.get("scope")
    if isinstance(text, list):
        text = " ".join(str(s) for s in text)
    if not isinstance(text, str):
        raise TokenRefused("the access token has no scope claim")
    try:
        scopes = tuple(parse_scopes(text, ("user", "patient")))
    except ScopeError as error:
        raise TokenRefused(str(error)) from None
    patient = claims.get("patient")
    if any(s.context == "patient" for s in scopes) and not isinstance(patient, str):
        raise TokenRefused("patient/ scopes need a patient claim")
    return Grant(client_id, scopes, " ".join(text.split()), user=user,
                 patient=str(patient).removeprefix("Patient/") if patient else "")


class UserTokens:
    """Verifies the access tokens of the configured OpenID Connect issuers."""

    def __init__(self, issuers: list[Issuer], audience: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuers = {i.url: i for i in issuers}
        self.audience, self.clock = audience, clock
        self._jwks = JwksCache()
        self._discovered: dict[str, str] = {}
        self._verified: dict[str, tuple[float, Grant]] = {}

    def knows(self, issuer: Any) -> bool:
        return isinstance(issuer, str) and issuer in self.issuers

    async def verify(self, token: str) -> Grant:
        """The grant of a valid token of a configured issuer; TokenRefused otherwise."""
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None and cached[0] > now - SKEW_SECONDS:
            return cached[1]
        header, unverified = peek_claims(token)
        issuer = self.issuers.get(unverified.get("iss"))  # type: ignore[arg-type]
        if issuer is None:
            raise TokenRefused(f"the access token's issuer {unverified.get('iss')!r} is not "
                               "trusted here")
        try:
            keys = await self._jwks.keys(await self._jwks_url(issuer), header.get("kid"))
            claims = dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
        except KeysError as error:
            raise TokenRefused(f"the keys of {issuer.url} cannot be had: {error}") from None
        except (JoseError, ValueError) as error:
            raise TokenRefused(f"the access token is not signed by a key of {issuer.url} "
                               f"with {', '.join(ALGORITHMS)} ({error})") from None
        expires = self._check_times(claims, now)
        self._check_audience(claims)
        grant = user_grant(claims, str(claims.get("azp") or claims.get("client_id") or
                                       claims.get("sub") or ""))
        if len(self._verified) >= MAX_CACHED:
            self._verified.clear()
        self._verified[token] = (expires, grant)
        return grant

    @staticmethod
    def _check_times(claims: dict[str, Any], now: float) -> float:
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenRefused("the access token needs a numeric exp")
        if exp < now - SKEW_SECONDS:
            raise TokenRefused("the access token has expired")
        if isinstance(nbf, int | float) and nbf > now + SKEW_SECONDS:
            raise TokenRefused("the access token is not valid yet (nbf)")
        return float(exp)

    def _check_audience(self, claims: dict[str, Any]) -> None:
        if not self.audience:
            return
        audience = claims.get("aud")
        if self.audience not in (audience if isinstance(audience, list) else [audience]):
            raise TokenRefused(f"the access token's audience is not {self.audience}")

    async def _jwks_url(self, issuer: Issuer) -> str:
        if issuer.jwks_url:
            return issuer.jwks_url
        found = self._discovered.get(issuer.url)
        if found is None:
            where = issuer.url.rstrip("/") + "/.well-known/openid-configuration"
            try:
                document = await asyncio.to_thread(fetch_json, where)
            except (OSError, orjson.JSONDecodeError) as error:
                raise KeysError(f"{where} cannot be fetched: {error}") from None
            found = document.get("jwks_uri")
            if not isinstance(found, str):
                raise KeysError(f"{where} names no jwks_uri")
            self._discovered[issuer.url] = found
        return found
