"""Where clients learn how to authorize: ``/.well-known/smart-configuration`` (SMART App
Launch v2, conformance.html) and the CapabilityStatement's security section."""

from __future__ import annotations

from typing import Any

from fhir_server.auth.tokens import ASSERTION_ALGORITHMS

TOKEN_PATH = "/auth/token"
JWKS_PATH = "/auth/jwks"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def origin(base_url: str, base_path: str) -> str:
    """``http://host:port`` (and any root path) of a FHIR base URL."""
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    return base_url[: -len(base)] if base and base_url.endswith(base) else base_url


def smart_configuration(server: str) -> dict[str, Any]:
    return {
        "issuer": server,
        "token_endpoint": server + TOKEN_PATH,
        "jwks_uri": server + JWKS_PATH,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.rs", "system/*.cruds",
                             "system/*.write", "system/*.*"],
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1",
                         "permission-v2"],
    }


def security(server: str) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` of a server with SMART on."""
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "token", "valueUri": server + TOKEN_PATH}]}],
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}]}],
        "description": "SMART Backend Services: client_credentials with a private_key_jwt "
                       "assertion (RS384 or ES384); system/ scopes, v1 and v2.",
    }
