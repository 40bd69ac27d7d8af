"""Turning stored versions, Bundles and errors into responses, splicing stored bytes."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.core.summary import select_elements, summarize
from fhir_server.core.versioning import etag, http_date
from fhir_server.outcome import Issue, operation_outcome
from fhir_server.rest.negotiation import CONTENT_TYPE, is_pretty, prefer
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.storage.port import StoredVersion
from fhir_server.validation.structure import StructureTable, r4_table


def json_response(status: int, body: bytes, request: FhirRequest | None = None,
                  headers: list[tuple[str, str]] | None = None) -> FhirResponse:
    if request is not None and is_pretty(request):
        body = jsonbytes.dumps(jsonbytes.loads(body), option=orjson.OPT_INDENT_2)
    return FhirResponse(status, body, [("content-type", CONTENT_TYPE), *(headers or [])])


def outcome_response(status: int, issues: list[Issue],
                     request: FhirRequest | None = None) -> FhirResponse:
    return json_response(status, jsonbytes.dumps(operation_outcome(issues)), request)


def error_response(error: FhirError) -> FhirResponse:
    """The OperationOutcome of a client error, with the headers it carries (Retry-After)."""
    response = outcome_response(error.status, error.issues)
    response.headers += error.headers
    return response


def shape(content: bytes, request: FhirRequest, table: StructureTable | None = None) -> bytes:
    """Apply ``_summary`` / ``_elements`` to stored bytes (untouched when neither is asked)."""
    summary, elements = request.param("_summary"), request.param("_elements")
    if (summary is None or summary == "false") and not elements:
        return content
    resource = jsonbytes.loads(content)
    table = table or r4_table()
    if summary is not None:
        resource = summarize(resource, summary, table)
    if elements:
        resource = select_elements(resource, elements.split(","), table)
    return jsonbytes.dumps(resource)


def version_headers(stored: StoredVersion, request: FhirRequest,
                    location: bool = False) -> list[tuple[str, str]]:
    headers = [("etag", etag(stored.version)),
               ("last-modified", http_date(stored.last_updated_ms))]
    if location:
        headers.append(("location", f"{request.base_url}/{stored.resource_type}/{stored.id}"
                                    f"/_history/{stored.version}"))
    return headers


def resource_response(request: FhirRequest, stored: StoredVersion, status: int = 200,
                      location: bool = False, honour_prefer: bool = False) -> FhirResponse:
    """A resource version as the body, with ETag / Last-Modified (/ Location)."""
    headers = version_headers(stored, request, location)
    wanted = prefer(request, "return") if honour_prefer else None
    if wanted == "minimal":
        return FhirResponse(status, b"", headers)
    if wanted == "operationoutcome":
        issue = Issue("informational", f"{stored.resource_type}/{stored.id} version "
                      f"{stored.version} stored", severity="information")
        body = jsonbytes.dumps(operation_outcome([issue]))
        return FhirResponse(status, body, [("content-type", CONTENT_TYPE), *headers])
    return json_response(status, shape(stored.content, request), request, headers)


def bundle_bytes(header: dict, entries: Iterable[bytes]) -> bytes:
    """A Bundle from its header fields and pre-serialised entry objects (byte splicing)."""
    head = jsonbytes.dumps(header)
    return head[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def entry_bytes(full_url: str, content: bytes | None, extra: dict) -> bytes:
    """One Bundle.entry: fullUrl, stored resource bytes spliced in, then ``extra`` fields."""
    parts = [b'{"fullUrl":' + jsonbytes.dumps(full_url)]
    if content:
        parts.append(b'"resource":' + content)
    parts.extend(jsonbytes.dumps(key) + b":" + jsonbytes.dumps(value)
                 for key, value in extra.items())
    return b",".join(parts) + b"}"
