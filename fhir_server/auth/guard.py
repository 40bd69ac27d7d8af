"""The door of every FHIR endpoint when auth is on: a valid bearer token (401 otherwise,
with a ``WWW-Authenticate`` challenge) whose scopes cover what the request needs (403
otherwise, naming what is missing). A user's token also brings the user's gate (their
tier, as search criteria and write checks), which the router puts in place for the
request; ``X-Purpose-Of-Use: BTG`` (break-glass, 急诊) opens the alliance tier to a
clinician for that one request, with a reason (``X-Break-Glass-Reason``, UTF-8
percent-encoded as header values are ASCII), and is audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from fhir_server.auth.access import PUBLIC, Targets, needs
from fhir_server.auth.oidc import TokenRefused, UserTokens, peek_claims
from fhir_server.auth.scopes import Grant
from fhir_server.auth.tiers import Tiers, UserGate
from fhir_server.auth.tokens import TokenService
from fhir_server.core.errors import FhirError, Forbidden, Unauthorized
from fhir_server.rest.request import FhirRequest

BREAK_GLASS = "BTG"
Recorder = Callable[[FhirRequest, Grant, str], Awaitable[None]]  # (request, grant, reason)


class Guard:
    """Authenticates a request once (batch entries inherit its grant) and authorizes each
    interaction it runs."""

    def __init__(self, tokens: TokenService, targets: Targets, tiers: Tiers,
                 users: UserTokens | None = None,
                 break_glass: Recorder | None = None,
                 break_glass_codes: frozenset[str] = frozenset()) -> None:
        self.tokens, self.targets, self.tiers, self.users = tokens, targets, tiers, users
        self.break_glass, self.break_glass_codes = break_glass, break_glass_codes

    async def check(self, request: FhirRequest, args: dict[str, str]) -> UserGate | None:
        """The user's gate for the request (None for a backend client or a public
        endpoint); Unauthorized or Forbidden when the request may not run."""
        if request.interaction in PUBLIC:
            return None
        grant = request.grant if isinstance(request.grant, Grant) \
            else await self._grant(request)
        request.grant = grant
        if grant.deidentified_only and not request.interaction.startswith("export"):
            raise Forbidden(f"{grant.client_id} is registered for de-identified bulk "
                            "export only")
        missing = grant.missing(needs(request, args, self.targets))
        if missing:
            wanted = ", ".join(f"{t}.{p}" for p, t in missing)
            raise Forbidden(f"the access token's scopes ({grant.scope_text}) do not allow "
                            f"{request.method} /{request.path}: it needs "
                            f"{grant.context}/{wanted}")
        return await self._gate(request, grant) if grant.user else None

    async def _gate(self, request: FhirRequest, grant: Grant) -> UserGate:
        user = await self.tiers.user(grant.user)
        if user is None:
            raise Unauthorized(f"the access token's fhirUser {grant.user} does not exist here")
        purpose = request.header("x-purpose-of-use")
        if purpose is not None and purpose != BREAK_GLASS:
            raise FhirError(f"X-Purpose-Of-Use {purpose!r} is not known here; "
                            f"{BREAK_GLASS} asks for break-glass access", "X-Purpose-Of-Use")
        if purpose == BREAK_GLASS:
            reason = unquote(request.header("x-break-glass-reason") or "").strip()
            if not reason:
                raise FhirError("break-glass access needs X-Break-Glass-Reason",
                                "X-Break-Glass-Reason")
            if user.admin:
                raise Forbidden("administrators have no break-glass access to patient data")
            if self.break_glass_codes and not user.codes & self.break_glass_codes:
                raise Forbidden("break-glass is open only to the roles "
                                f"{', '.join(sorted(self.break_glass_codes))} "
                                "(FHIR_BREAK_GLASS_ROLES)")
            if self.break_glass is not None:
                await self.break_glass(request, grant, reason)
        if request.interaction in ("reindex", "expunge") and "system-admin" not in user.roles:
            raise Forbidden(f"{request.interaction} is for system administrators")
        return await self.tiers.gate(user, grant.patient if grant.context == "patient" else "",
                                     purpose == BREAK_GLASS)

    async def gate_of(self, user: str, patient: str, break_glass: bool) -> UserGate:
        """The gate of work done later for a user (an export job): their tier as it is
        now; Forbidden when they no longer exist."""
        found = await self.tiers.user(user)
        if found is None:
            raise Forbidden(f"the export's user {user} no longer exists here")
        return await self.tiers.gate(found, patient, break_glass and not found.admin)

    async def _grant(self, request: FhirRequest) -> Grant:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("an access token is needed (Authorization: Bearer ...); get "
                               "one from the token endpoint", error=None)
        if self.users is not None:
            try:
                issuer = peek_claims(token)[1].get("iss")
                if self.users.knows(issuer):
                    return await self.users.verify(token)
            except TokenRefused as refused:
                raise Unauthorized(str(refused)) from None
        grant = self.tokens.verify(token)
        if grant is None:
            raise Unauthorized("the access token is expired, malformed or not issued here")
        return grant
