"""read: ``GET [base]/[type]/[id]`` (https://hl7.org/fhir/R4/http.html#read).

Conditional read: ``If-None-Match`` (ETag) and ``If-Modified-Since`` answer 304.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from fhir_server.core.errors import FhirError
from fhir_server.core.versioning import parse_etag
from fhir_server.rest.access_audit import touch
from fhir_server.rest.context import Context
from fhir_server.rest.render import resource_response, version_headers
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.storage.port import StoredVersion


def _not_modified(request: FhirRequest, stored: StoredVersion) -> bool:
    none_match = request.header("if-none-match")
    if none_match:
        return any(parse_etag(tag) == stored.version for tag in none_match.split(","))
    since = request.header("if-modified-since")
    if since:
        try:
            moment = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            raise FhirError(f"Invalid HTTP date {since!r}", "If-Modified-Since") from None
        return stored.last_updated_ms // 1000 <= int(moment.timestamp())
    return False


async def read(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    stored = await ctx.service.read(args["type"], args["id"])
    touch(request, f"{args['type']}/{args['id']}", stored.content)
    if _not_modified(request, stored):
        return FhirResponse(304, b"", version_headers(stored, request))
    return resource_response(request, stored)
