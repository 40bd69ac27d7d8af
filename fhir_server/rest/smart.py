"""The SMART Backend Services endpoints outside the FHIR base: the token endpoint
(``POST /auth/token``), the server's public keys (``/auth/jwks``) and the discovery
document (``/.well-known/smart-configuration``; also under the FHIR base)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server import jsonbytes
from fhir_server.audit.events import break_glass_event, token_event
from fhir_server.auth.discovery import JWKS_PATH, TOKEN_PATH, origin, smart_configuration
from fhir_server.auth.guard import Guard
from fhir_server.auth.oidc import UserTokens, issuers_of
from fhir_server.auth.scopes import Grant
from fhir_server.auth.server_key import server_key
from fhir_server.auth.tiers import Tiers
from fhir_server.auth.tokens import OAuthError, TokenService
from fhir_server.rest.context import Context
from fhir_server.rest.ops import OpsHandler
from fhir_server.rest.request import FhirRequest, FhirResponse

WELL_KNOWN = "/.well-known/smart-configuration"
NO_STORE = (("content-type", "application/json"), ("cache-control", "no-store"),
            ("pragma", "no-cache"))
FORM = "application/x-www-form-urlencoded"


class SmartEndpoints:
    """Opened with the service: loads the server's key and puts the guard in place."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tokens: TokenService | None = None
        self.routes: dict[tuple[str, str], OpsHandler] = {
            ("POST", TOKEN_PATH): self.token, ("GET", JWKS_PATH): self.jwks,
            ("GET", WELL_KNOWN): self.configuration}

    async def open(self) -> None:
        service = self.ctx.service
        settings = self.ctx.settings
        self.tokens = TokenService(service.storage, await server_key(service.storage),
                                   settings.token_lifetime, dev_tokens=settings.dev_tokens)
        issuers = issuers_of(settings.oidc_issuer, settings.oidc_jwks_url)
        users = UserTokens(issuers, settings.oidc_audience) if issuers else None

        def targets(source: str, code: str) -> tuple[str, ...]:
            param = service.search_registry.get(source, code)
            return param.targets if param is not None else ()
        self.ctx.guard = Guard(self.tokens, targets, Tiers(service, settings.default_tier),
                               users, None if settings.audit_access else self._break_glass,
                               settings.break_glass_codes)
        guard = self.ctx.guard
        if self.ctx.exports is not None:  # an export reads what its user may see
            self.ctx.exports.gates = lambda job: guard.gate_of(job.user, job.patient,
                                                              job.break_glass)

    async def _break_glass(self, request: FhirRequest, grant: Grant, reason: str) -> None:
        await self.ctx.record(break_glass_event(grant.user, grant.client_id, reason,
                                                f"{request.method} /{request.path}",
                                                request.client))

    def _server(self, request: FhirRequest) -> str:
        return origin(request.base_url, self.ctx.settings.base_path)

    async def configuration(self, request: FhirRequest) -> FhirResponse:
        body = jsonbytes.dumps(smart_configuration(self._server(request)))
        return FhirResponse(200, body, [("content-type", "application/json")])

    async def jwks(self, request: FhirRequest) -> FhirResponse:
        assert self.tokens is not None
        key = self.tokens.key.as_dict(private=False)
        body = jsonbytes.dumps({"keys": [{**key, "use": "sig", "alg": "ES256"}]})
        return FhirResponse(200, body, [("content-type", "application/json")])

    async def token(self, request: FhirRequest) -> FhirResponse:
        assert self.tokens is not None
        try:
            if not (request.header("content-type") or "").startswith(FORM):
                raise OAuthError("invalid_request", f"the token request must be {FORM}")
            form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
            issued = await self.tokens.issue(form, self._server(request) + TOKEN_PATH)
        except OAuthError as error:
            await self._audit(error.client_id, False, error.description, request)
            body = jsonbytes.dumps({"error": error.error, "error_description": error.description})
            return FhirResponse(error.status, body, list(NO_STORE))
        await self._audit(issued.grant.client_id, True,
                          f"access token issued for {issued.grant.scope_text}", request)
        return FhirResponse(200, jsonbytes.dumps(issued.answer()), list(NO_STORE))

    async def _audit(self, client_id: str, granted: bool, description: str,
                     request: FhirRequest) -> None:
        await self.ctx.record(token_event(client_id, granted, description, request.client))
