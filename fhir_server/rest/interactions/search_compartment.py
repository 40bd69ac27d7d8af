"""Compartment search: ``GET [base]/[Compartment]/[id]/[type]?…``.

Resources of ``type`` linked to the compartment owner through the parameters the R4
CompartmentDefinition names (e.g. ``Patient/123/DiagnosticReport``: subject);
``Patient/123/*``: every type of the compartment.
Spec: https://hl7.org/fhir/R4/compartmentdefinition.html
"""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.rest.context import Context
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.searchset import searchset


async def search_compartment(ctx: Context, request: FhirRequest,
                             args: dict[str, str]) -> FhirResponse:
    owner, rtype = args["type"], args["compartment_type"]
    ctx.service.check_type(owner)
    path = f"{owner}/{args['id']}/{rtype}"
    searcher = ctx.service.searcher
    if rtype == "*":  # every type of the compartment
        types = searcher.compartment_types(owner)
        if not types:
            raise FhirError(f"{owner} is not a compartment", path)
        return await searchset(ctx, request, types, path,
                               (searcher.whole_compartment(owner, args["id"], types),))
    ctx.service.check_type(rtype)
    return await searchset(ctx, request, (rtype,), path,
                           (searcher.compartment(owner, args["id"], rtype),))
