"""The API description: ``GET [base]/api-docs`` (OpenAPI 3, generated from the
CapabilityStatement) and ``GET [base]/swagger-ui/`` (Swagger UI, served from the assets the
``swagger-ui-bundle`` package ships: hospital networks are often closed, so no CDN)."""

from __future__ import annotations

import html
from importlib import resources as package_files
from pathlib import Path

import swagger_ui_bundle

from fhir_server import jsonbytes
from fhir_server.core.errors import NotFound
from fhir_server.rest.context import Context
from fhir_server.rest.interactions.capabilities import capability_statement
from fhir_server.rest.openapi import openapi_document
from fhir_server.rest.request import FhirRequest, FhirResponse

BUNDLED = {  # file -> content type, from swagger-ui-bundle
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
OURS = {"swagger-init.js": "application/javascript; charset=utf-8"}
CACHE = ("cache-control", "public, max-age=86400")

# The page's own assets only; Swagger UI sets inline styles and data: images.
PAGE_POLICY = ("content-security-policy", "default-src 'self'; style-src 'self' "
               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")


def _web(name: str) -> bytes:
    return package_files.files("fhir_server.web").joinpath(name).read_bytes()


async def api_docs(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    """The OpenAPI document, built once per base URL and search registry."""
    body = ctx.cached(("api-docs", request.base_url, ctx.service.search_generation),
                      lambda: jsonbytes.dumps(openapi_document(
                          capability_statement(ctx, request.base_url))))
    return FhirResponse(200, body, [("content-type", "application/json")])


async def swagger_ui(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    """The page, or one of its assets."""
    name = args.get("asset", "index.html")
    if name == "index.html":
        page = _web("swagger-ui.html").decode().format(
            assets=html.escape(f"{request.base_url}/swagger-ui"),
            api_docs=html.escape(f"{request.base_url}/api-docs"))
        return FhirResponse(200, page.encode(), [("content-type", "text/html; charset=utf-8"),
                                                 PAGE_POLICY])
    kind = BUNDLED.get(name) or OURS.get(name)
    if kind is None:
        raise NotFound(f"No file {name} in the API description page", f"swagger-ui/{name}")
    body = ctx.cached(("swagger-ui", name), lambda: _web(name) if name in OURS
                      else (Path(swagger_ui_bundle.swagger_ui_path) / name).read_bytes())
    return FhirResponse(200, body, [("content-type", kind), CACHE])
