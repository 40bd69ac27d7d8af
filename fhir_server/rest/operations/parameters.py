"""An operation's parameters: the query's pairs, plus those of a POSTed Parameters body
(primitive values as text, ``valueReference`` as its reference)."""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import parse_resource
from fhir_server.rest.negotiation import check_content_type
from fhir_server.rest.request import FhirRequest


async def operation_parameters(request: FhirRequest, operation: str,
                               max_depth: int) -> list[tuple[str, str]]:
    pairs = list(request.query)
    if request.method == "POST" and request.body.strip():
        check_content_type(request)
        body = await parse_resource(request.body, max_depth)
        if body.get("resourceType") != "Parameters":
            raise FhirError(f"The body of {operation} must be a Parameters resource",
                            "resourceType")
        for index, parameter in enumerate(body.get("parameter") or []):
            where = f"Parameters.parameter[{index}]"
            if not isinstance(parameter, dict):
                raise FhirError("Each parameter must be an object", where)
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                value = value["reference"]
            if not isinstance(value, str | int):
                raise FhirError("Each parameter needs a primitive value or a reference", where)
            pairs.append((str(parameter.get("name", "")), str(value).lower()
                          if isinstance(value, bool) else str(value)))
    return pairs
