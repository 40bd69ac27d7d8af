"""``$validate`` at type and instance level (https://hl7.org/fhir/R4/resource-operation-validate.html).

``POST [base]/[type]/$validate`` (and ``…/[type]/[id]/$validate``) with the resource, or a
Parameters resource holding ``resource`` (and ``mode``), answers 200 with an
OperationOutcome: every structure and business-rule issue, or one informational issue when
the resource is valid. Any R4 resource type can be validated at type level, stored here or
not (Bundle as a Bundle, Parameters, …); ``mode=delete`` checks that the resource exists.
Nothing is stored.
"""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import dumps, parse_resource
from fhir_server.outcome import Issue, information, operation_outcome
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.types import Resource
from fhir_server.validation.structure import r4_table

MODES = ("create", "update", "delete")


def _unwrap(body: Resource, rtype: str) -> tuple[Resource | None, str | None]:
    """The resource and mode of a Parameters wrapper (a Parameters to validate as such has
    no ``resource`` parameter), or the body itself."""
    parameters = body.get("parameter") if body.get("resourceType") == "Parameters" else None
    if parameters is None or (rtype == "Parameters" and not any(
            isinstance(p, dict) and p.get("name") == "resource" for p in parameters)):
        return body, None
    resource, mode = None, None
    for parameter in body.get("parameter") or []:
        if parameter.get("name") == "resource":
            resource = parameter.get("resource")
        elif parameter.get("name") == "mode":
            mode = parameter.get("valueCode")
    return resource, mode


async def validate(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    rtype = args["type"]
    if "id" in args or rtype not in r4_table().resources:
        ctx.service.check_type(rtype)
    check_content_type(request)
    resource, mode = (_unwrap(await parse_resource(request.body, ctx.settings.max_depth), rtype)
                      if request.body.strip() else (None, None))
    mode = request.param("mode") or mode or ("update" if "id" in args else "create")
    if mode not in MODES:
        raise FhirError(f"mode must be one of {', '.join(MODES)}", "mode")
    if mode == "delete":  # the read checks that the type is served
        await ctx.service.read(rtype, args.get("id", ""))
        return json_response(200, dumps(information("The resource may be deleted")), request)
    if not isinstance(resource, dict):
        raise FhirError("$validate needs a resource to validate", "resource")
    issues: list[Issue] = ctx.service.check(resource, rtype)
    if mode == "update" and "id" in args and resource.get("id") != args["id"]:
        issues.append(Issue("invalid", f"The resource id does not match {args['id']}",
                            f"{rtype}.id"))
    body = operation_outcome(issues) if issues else information("Validation passed / 校验通过")
    return json_response(200, dumps(body), request)
