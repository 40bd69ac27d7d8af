"""patch: ``PATCH [base]/[type]/[id]`` (https://hl7.org/fhir/R4/http.html#patch).

Bodies: JSON Patch (``application/json-patch+json``), FHIRPath Patch (a Parameters resource,
``application/fhir+json``), or a JSON merge patch object; ``If-Match`` is honoured.
``PATCH [base]/[type]?criteria`` patches the one match (none: 404, more: 412).
"""

from __future__ import annotations

from fhir_server.core.patch import JSON_PATCH, patcher
from fhir_server.rest.context import Context
from fhir_server.rest.interactions._body import conditional_query, if_match
from fhir_server.rest.negotiation import JSON_TYPES, check_content_type
from fhir_server.rest.render import resource_response
from fhir_server.rest.request import FhirRequest, FhirResponse

PATCH_TYPES = (JSON_PATCH, "application/merge-patch+json", *JSON_TYPES)


async def patch(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    ctx.service.check_type(args["type"])
    media = check_content_type(request, PATCH_TYPES)
    patch_of = patcher(media, request.body, ctx.settings.max_body_bytes,
                       ctx.settings.max_depth)
    if "id" in args:
        stored = await ctx.service.patch(args["type"], args["id"], patch_of, if_match(request))
    else:
        stored = await ctx.service.conditional_patch(args["type"], conditional_query(request),
                                                     patch_of, if_match(request))
    return resource_response(request, stored, honour_prefer=True)
