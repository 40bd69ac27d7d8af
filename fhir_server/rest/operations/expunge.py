"""``POST [base]/[type]/[id]/$expunge``: erase a resource and every version of it (PIPL
art. 47, the right to deletion), as HAPI's operation of that name does at instance level.

Off unless ``FHIR_EXPUNGE=true`` (403). A resource that current resources reference is
refused (409, naming them) unless ``_cascade=delete`` (or a Parameters body with
``cascade`` = true) asks to erase those too. Every erasure is recorded by an AuditEvent
written in the same transaction. Answers a Parameters resource: ``count`` and each
erased ``Type/id``.
"""

from __future__ import annotations

from fhir_server.core.errors import FhirError, Forbidden
from fhir_server.core.jsonio import dumps, parse_resource
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def _cascade(request: FhirRequest, max_depth: int) -> bool:
    asked = request.param("_cascade")
    if asked not in (None, "delete"):
        raise FhirError(f"_cascade takes 'delete', not {asked!r}", "_cascade")
    if request.body.strip():
        check_content_type(request)
        body = await parse_resource(request.body, max_depth)
        if body.get("resourceType") != "Parameters":
            raise FhirError("The body of $expunge must be a Parameters resource",
                            "resourceType")
        for parameter in body.get("parameter") or []:
            if parameter.get("name") == "cascade":
                return parameter.get("valueBoolean") is True
    return asked == "delete"


async def expunge(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    if not ctx.settings.expunge:
        raise Forbidden("$expunge is switched off on this server (FHIR_EXPUNGE)", "$expunge")
    cascade = await _cascade(request, ctx.settings.max_depth)
    erased = await ctx.service.expunge(args["type"], args["id"], cascade)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "count", "valueInteger": len(erased)},
        *({"name": "erased", "valueString": f"{t}/{i}"} for t, i in erased)]}
    return json_response(200, dumps(body), request)
