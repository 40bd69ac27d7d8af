"""create: ``POST [base]/[type]`` (https://hl7.org/fhir/R4/http.html#create).

201 with Location (``…/_history/1``), ETag and Last-Modified; ``Prefer: return=`` honoured.
With ``If-None-Exist: criteria`` (conditional create): one match answers 200 with it, more
than one 412.
"""

from __future__ import annotations

from fhir_server.rest.context import Context
from fhir_server.rest.interactions._body import resource_body
from fhir_server.rest.render import resource_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def create(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    ctx.service.check_type(args["type"])
    resource = await resource_body(request, args["type"], ctx.settings.max_depth)
    condition = request.header("if-none-exist")
    if condition:
        stored, created = await ctx.service.conditional_create(args["type"], resource,
                                                               condition)
        return resource_response(request, stored, 201 if created else 200, location=True,
                                 honour_prefer=True)
    stored = await ctx.service.create(args["type"], resource)
    return resource_response(request, stored, 201, location=True, honour_prefer=True)
