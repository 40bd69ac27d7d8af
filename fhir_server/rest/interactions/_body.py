"""Reading a resource body of a write request: media type, JSON, resourceType."""

from __future__ import annotations

from urllib.parse import urlencode

from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import parse_resource
from fhir_server.core.versioning import parse_etag
from fhir_server.rest.negotiation import check_content_type
from fhir_server.rest.request import FhirRequest


async def resource_body(request: FhirRequest, resource_type: str, max_depth: int) -> dict:
    check_content_type(request)
    resource = await parse_resource(request.body, max_depth)
    if resource["resourceType"] != resource_type:
        raise FhirError(f"The body is a {resource['resourceType']} but the URL names "
                        f"{resource_type}", "resourceType")
    return resource


def conditional_query(request: FhirRequest) -> str:
    """The criteria of a conditional update, patch or delete (its query string)."""
    criteria = [(k, v) for k, v in request.query if k not in ("_format", "_pretty")]
    if not criteria:
        raise FhirError(f"{request.method} on a resource type needs search criteria "
                        "(a conditional request) or an id", request.path)
    return urlencode(criteria)


def if_match(request: FhirRequest) -> int | None:
    value = request.header("if-match")
    return parse_etag(value) if value else None
