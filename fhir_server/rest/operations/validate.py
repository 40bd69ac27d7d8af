"""``$validate`` at type and instance level (https://hl7.org/fhir/R4/resource-operation-validate.html).

``POST [base]/[type]/$validate`` (and ``…/[type]/[id]/$validate``) with the resource, or a
Parameters resource holding ``resource`` (and ``mode``), answers 200 with an
OperationOutcome: every structure and business-rule issue, or one informational issue when
the resource is valid. ``mode=delete`` checks that the resource exists. Nothing is stored.
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

MODES = ("create", "update", "delete")


def _unwrap(body: Resource) -> tuple[Resource | None, str | None]:
    if body.get("resourceType") != "Parameters":
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
    ctx.service.check_type(rtype)
    check_content_type(request)
    resource, mode = (_unwrap(await parse_resource(request.body, ctx.settings.max_depth))
                      if request.body.strip() else (None, None))
    mode = request.param("mode") or mode or ("update" if "id" in args else "create")
    if mode not in MODES:
        raise FhirError(f"mode must be one of {', '.join(MODES)}", "mode")
    if mode == "delete":
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
