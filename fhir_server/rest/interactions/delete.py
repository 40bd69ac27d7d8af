"""delete: ``DELETE [base]/[type]/[id]`` (https://hl7.org/fhir/R4/http.html#delete).

Versioned: a deletion is a new version, read then answers 410. Deleting a missing or
deleted resource succeeds with no change. 204, or 200 with an OperationOutcome when
``Prefer: return=OperationOutcome``; 409 while other resources still reference it.
``DELETE [base]/[type]?criteria`` deletes every match (up to ``FHIR_CONDITIONAL_DELETE_MAX``,
more answer 412) in one transaction.
"""

from __future__ import annotations

from fhir_server.core.jsonio import dumps
from fhir_server.core.versioning import etag
from fhir_server.outcome import information
from fhir_server.rest.context import Context
from fhir_server.rest.interactions._body import conditional_query, if_match
from fhir_server.rest.negotiation import prefer
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse


async def delete(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    if "id" not in args:
        ctx.service.check_type(args["type"])
        deleted = await ctx.service.conditional_delete(args["type"], conditional_query(request))
        return _answer(request, f"{len(deleted)} {args['type']} deleted", [])
    stored = await ctx.service.delete(args["type"], args["id"], if_match(request))
    headers = [("etag", etag(stored.version))] if stored.version else []
    return _answer(request, f"{args['type']}/{args['id']} deleted", headers)


def _answer(request: FhirRequest, message: str, headers: list[tuple[str, str]]) -> FhirResponse:
    if prefer(request, "return") == "operationoutcome":
        return json_response(200, dumps(information(message)), request, headers)
    return FhirResponse(204, b"", headers)
