"""search-type: ``GET [base]/[type]?…`` and ``POST [base]/[type]/_search``.

Spec: https://hl7.org/fhir/R4/search.html; see ``rest/searchset.py`` for the Bundle.
"""

from __future__ import annotations

from fhir_server.rest.context import Context
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.searchset import searchset


async def search_type(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    ctx.service.check_type(args["type"])
    return await searchset(ctx, request, (args["type"],), args["type"])
