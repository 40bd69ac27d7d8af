"""``POST [base]/$reindex``: learn stored SearchParameters and rebuild the search index.

Run it after adding, changing or deleting SearchParameter resources (or after an upgrade
whose notes say so). Answers a Parameters resource with ``count``, the resources indexed.
The same as ``alliance-fhir reindex``.
"""

from __future__ import annotations

from fhir_server.core.errors import Forbidden
from fhir_server.core.jsonio import dumps
from fhir_server.rest.context import Context
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def reindex(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    if not ctx.settings.admin_operations:
        raise Forbidden("$reindex is switched off on this server (FHIR_ADMIN_OPERATIONS)",
                        "$reindex")
    await ctx.service.load_search_parameters()
    count = await ctx.service.reindex()
    body = {"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": count}]}
    return json_response(200, dumps(body), request)
