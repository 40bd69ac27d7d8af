"""capabilities: ``GET [base]/metadata`` (https://hl7.org/fhir/R4/capabilitystatement.html).

Built from the route table, so it lists exactly what the router answers.
"""

from __future__ import annotations

from fhir_server import __version__, jsonbytes
from fhir_server.auth.discovery import origin, security
from fhir_server.auth.discovery import smart_configuration as discovery
from fhir_server.core.errors import NotFound
from fhir_server.core.jsonio import dumps
from fhir_server.rest.context import Context
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.search.registry import UNSUPPORTED

TYPE_LEVEL = ("read", "vread", "update", "patch", "delete", "history-instance",
              "history-type", "create", "search-type")
SYSTEM_LEVEL = ("transaction", "batch", "history-system", "search-system")
EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
EXPORT = "http://alliance-fhir.org/fhir/OperationDefinition/export-deidentified"
KPIS = "http://alliance-fhir.org/fhir/OperationDefinition/referral-kpis"
WEBSOCKET = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket"


def _websocket_url(base_url: str) -> str:
    """Where Subscriptions of the websocket channel are bound."""
    scheme, _, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/websocket"


def _search_params(ctx: Context, rtype: str) -> list[dict[str, str]]:
    return [{"name": p.code, "definition": p.url, "type": p.type}
            for p in ctx.service.search_registry.params(rtype) if p.code not in UNSUPPORTED]


def _switched_operations(ctx: Context, base_url: str) -> list[dict[str, str]]:
    """The operations configuration turns on: $reindex (on by default), $expunge (off)."""
    switched = (("reindex", ctx.settings.admin_operations), ("expunge", ctx.settings.expunge))
    return [{"name": name, "definition": f"{base_url}/OperationDefinition/{name}"}
            for name, on in switched if on]


def capability_statement(ctx: Context, base_url: str) -> dict[str, object]:
    codes = {code for route in ctx.router.routes for code in route.interactions} \
        if ctx.router else set()
    registry = ctx.service.search_registry
    resources = [{
        "type": rtype,
        "interaction": [{"code": code} for code in TYPE_LEVEL if code in codes],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "multiple",
        "referencePolicy": ["literal", "local", "enforced"],
        "searchInclude": ["*", *[f"{rtype}:{p.code}" for p in registry.params(rtype)
                                 if p.type == "reference"]],
        "searchRevInclude": ["*", *[f"{source}:{p.code}" for source in registry.types
                             for p in registry.params(source) if p.type == "reference"
                             and (not p.targets or rtype in p.targets)]],
        "searchParam": _search_params(ctx, rtype),
        **({"operation": [{"name": "everything", "definition": EVERYTHING},
                          {"name": "export", "definition": EXPORT}]}
           if rtype == "Patient" and "everything" in codes else
           {"operation": [{"name": "export", "definition": EXPORT}]}
           if rtype == "Group" and "export" in codes else
           {"operation": [{"name": "referral-kpis", "definition": KPIS}]}
           if rtype == "Organization" and "referral-kpis" in codes else {}),
    } for rtype in ctx.service.registry.ordered]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "alliance-fhir-server",
        "kind": "instance",
        "software": {"name": "alliance-fhir-server", "version": __version__},
        "implementation": {"description": "Alliance FHIR server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "extension": [{"url": WEBSOCKET, "valueUri": _websocket_url(base_url)}],
            **({"security": security(origin(base_url, ctx.settings.base_path))}
               if ctx.settings.auth == "smart" else {}),
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_LEVEL if code in codes],
            "searchParam": [{"name": code, "type": kind} for code, kind in (
                ("_id", "token"), ("_lastUpdated", "date"), ("_tag", "token"),
                ("_profile", "uri"), ("_security", "token"), ("_source", "uri"),
                ("_type", "token"))],
            "operation": [*_switched_operations(ctx, base_url),
                          *([{"name": "export", "definition": EXPORT}] if "export" in codes
                            else []),
                          *([{"name": "referral-kpis", "definition": KPIS}]
                            if "referral-kpis" in codes else []),
                          {"name": "validate", "definition":
                           "http://hl7.org/fhir/OperationDefinition/Resource-validate"}],
            "compartment": [f"http://hl7.org/fhir/CompartmentDefinition/{c.lower()}"
                            for c in registry.compartments],
        }],
    }


async def smart_configuration(ctx: Context, request: FhirRequest,
                              args: dict[str, str]) -> FhirResponse:
    """``[base]/.well-known/smart-configuration``: how to get a token (auth on only)."""
    if ctx.settings.auth != "smart":
        raise NotFound("Authorization is off (FHIR_AUTH=none): there is no token endpoint")
    server = origin(request.base_url, ctx.settings.base_path)
    return FhirResponse(200, jsonbytes.dumps(discovery(server)),
                        [("content-type", "application/json")])


async def capabilities(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    """The statement, built once per base URL and search registry (700 KB for 145 types:
    40 ms to build, and clients ask for it first)."""
    body = ctx.cached(("metadata", request.base_url, ctx.service.search_generation),
                      lambda: dumps(capability_statement(ctx, request.base_url)))
    return json_response(200, body, request)
