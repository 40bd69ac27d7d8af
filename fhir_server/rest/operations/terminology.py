"""Terminology operations as HTTP: ``GET`` with query parameters or ``POST`` with
Parameters, at type level or on one stored resource (its url is then implied).
See ``core/terminology_ops.py`` and docs/api/terminology.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import dumps, parse_resource
from fhir_server.core.terminology import Terminology
from fhir_server.core.terminology_ops import Params, TerminologyOperations
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.types import Resource

Operation = Callable[[TerminologyOperations, Params], Awaitable[Resource]]
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("CodeSystem", "lookup"): TerminologyOperations.lookup,
    ("CodeSystem", "validate-code"): TerminologyOperations.validate_code_system,
    ("CodeSystem", "subsumes"): TerminologyOperations.subsumes,
    ("ValueSet", "expand"): TerminologyOperations.expand,
    ("ValueSet", "validate-code"): TerminologyOperations.validate_value_set,
    ("ConceptMap", "translate"): TerminologyOperations.translate,
}


async def _params(request: FhirRequest, max_depth: int) -> Params:
    params: Params = {k: v for k, v in request.query if not k.startswith("_")}
    if request.method == "POST" and request.body.strip():
        check_content_type(request)
        body = await parse_resource(request.body, max_depth)
        for parameter in body.get("parameter") or []:
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
            if isinstance(value, dict):  # valueCoding
                params.setdefault("system", value.get("system", ""))
                value = value.get("code")
            if value is not None:
                params[parameter.get("name", "")] = str(value)
    return params


async def terminology(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    rtype, name = args["type"], args["operation"].removeprefix("$")
    operation = OPERATIONS.get((rtype, name))
    if operation is None:
        raise FhirError(f"There is no operation ${name} on {rtype}", f"{rtype}/${name}")
    params = await _params(request, ctx.settings.max_depth)
    if "id" in args:
        stored = await ctx.service.read(rtype, args["id"])
        params.setdefault("url", orjson.loads(stored.content).get("url", ""))
        if rtype == "CodeSystem":
            params.setdefault("system", params["url"])
    ops = TerminologyOperations(Terminology(ctx.service.searcher))
    return json_response(200, dumps(await operation(ops, params)), request)
