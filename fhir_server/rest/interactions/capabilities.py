"""capabilities: ``GET [base]/metadata`` (https://hl7.org/fhir/R4/capabilitystatement.html).

Built from the route table, so it lists exactly what the router answers.
"""

from __future__ import annotations

from fhir_server import __version__
from fhir_server.core.jsonio import dumps
from fhir_server.rest.context import Context
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse

TYPE_LEVEL = ("read", "vread", "update", "patch", "delete", "history-instance",
              "history-type", "create", "search-type")
SYSTEM_LEVEL = ("transaction", "batch", "history-system")


def capability_statement(ctx: Context, base_url: str) -> dict:
    codes = {code for route in ctx.router.routes for code in route.interactions} \
        if ctx.router else set()
    resources = [{
        "type": rtype,
        "interaction": [{"code": code} for code in TYPE_LEVEL if code in codes],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalRead": "full-support",
        "conditionalDelete": "not-supported",
        "referencePolicy": ["literal", "local", "enforced"],
        "searchParam": [{"name": "_id", "type": "token",
                         "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"}],
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
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_LEVEL if code in codes],
        }],
    }


async def capabilities(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    return json_response(200, dumps(capability_statement(ctx, request.base_url)), request)
