"""vread: ``GET [base]/[type]/[id]/_history/[vid]`` (https://hl7.org/fhir/R4/http.html#vread)."""

from __future__ import annotations

from fhir_server.rest.access_audit import touch
from fhir_server.rest.context import Context
from fhir_server.rest.render import resource_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def vread(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    stored = await ctx.service.vread(args["type"], args["id"], args["vid"])
    touch(request, f"{args['type']}/{args['id']}", stored.content)
    return resource_response(request, stored)
