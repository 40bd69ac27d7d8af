"""update: ``PUT [base]/[type]/[id]`` (https://hl7.org/fhir/R4/http.html#update).

Update-as-create with the client's id is allowed (201); ``If-Match`` makes it version-aware
(412 on mismatch). ``PUT [base]/[type]?criteria`` is the conditional update: no match
creates, one match is updated, more answer 412.
"""

from __future__ import annotations

from fhir_server.rest.context import Context
from fhir_server.rest.interactions._body import conditional_query, if_match, resource_body
from fhir_server.rest.render import resource_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def update(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    ctx.service.check_type(args["type"])
    resource = await resource_body(request, args["type"], ctx.settings.max_depth)
    if "id" in args:
        stored = await ctx.service.update(args["type"], args["id"], resource, if_match(request))
    else:
        stored = await ctx.service.conditional_update(args["type"], conditional_query(request),
                                                      resource, if_match(request))
    status = 201 if stored.created else 200
    return resource_response(request, stored, status, location=True, honour_prefer=True)
