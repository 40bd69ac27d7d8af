"""create: ``POST [base]/[type]`` (https://hl7.org/fhir/R4/http.html#create).

201 with Location (``…/_history/1``), ETag and Last-Modified; ``Prefer: return=`` honoured.
"""

from __future__ import annotations

from fhir_server.rest.context import Context
from fhir_server.rest.interactions._body import resource_body
from fhir_server.rest.render import resource_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def create(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    ctx.service.check_type(args["type"])
    stored = await ctx.service.create(args["type"], resource_body(request, args["type"]))
    return resource_response(request, stored, 201, location=True, honour_prefer=True)
