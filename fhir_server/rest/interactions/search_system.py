"""search-system: ``GET [base]?…`` and ``POST [base]/_search`` across types.

``_type`` names the types (default: all served types); criteria must mean the same for all
of them (``_id``, ``_lastUpdated``, ``_tag``, ``_profile``, ``_security``, ``_source``, or
parameters the named types share). ``GET [base]`` with no parameters at all is a 400.
"""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.rest.context import Context
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.searchset import criteria, searchset


async def search_system(ctx: Context, request: FhirRequest,
                        args: dict[str, str]) -> FhirResponse:
    pairs = criteria(request)
    if not pairs:
        raise FhirError("GET on the base URL needs a resource type or search parameters, "
                        "e.g. [base]/Patient or [base]?_type=Patient,Practitioner&_id=…; "
                        "see [base]/metadata for what this server supports")
    types: tuple[str, ...] = ()
    for name, value in pairs:
        if name == "_type":
            types = tuple(t for t in value.split(",") if t)
    for rtype in types:
        ctx.service.check_type(rtype)
    return await searchset(ctx, request, types, "")
