"""The door of every FHIR endpoint when auth is on: a valid bearer token (401 otherwise,
with a ``WWW-Authenticate`` challenge) whose scopes cover what the request needs (403
otherwise, naming what is missing)."""

from __future__ import annotations

from fhir_server.auth.access import PUBLIC, Targets, needs
from fhir_server.auth.scopes import Grant
from fhir_server.auth.tokens import TokenService
from fhir_server.core.errors import Forbidden, Unauthorized
from fhir_server.rest.request import FhirRequest


class Guard:
    """Authenticates a request once (batch entries inherit its grant) and authorizes each
    interaction it runs."""

    def __init__(self, tokens: TokenService, targets: Targets) -> None:
        self.tokens, self.targets = tokens, targets

    def check(self, request: FhirRequest, args: dict[str, str]) -> None:
        if request.interaction in PUBLIC:
            return
        grant = request.grant if isinstance(request.grant, Grant) else self._grant(request)
        request.grant = grant
        if grant.deidentified_only and not request.interaction.startswith("export"):
            raise Forbidden(f"{grant.client_id} is registered for de-identified bulk "
                            "export only")
        missing = grant.missing(needs(request, args, self.targets))
        if missing:
            wanted = ", ".join(f"{t}.{p}" for p, t in missing)
            raise Forbidden(f"the access token's scopes ({grant.scope_text}) do not allow "
                            f"{request.method} /{request.path}: it needs system/{wanted}")

    def _grant(self, request: FhirRequest) -> Grant:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("an access token is needed (Authorization: Bearer ...); get "
                               "one from the token endpoint", error=None)
        grant = self.tokens.verify(token.strip())
        if grant is None:
            raise Unauthorized("the access token is expired, malformed or not issued here")
        return grant
