"""search-type: ``GET [base]/[type]?…`` and ``POST [base]/[type]/_search``.

This first cut knows ``_id``, ``_count``, ``_offset``, ``_summary=count`` and ``_elements``
(https://hl7.org/fhir/R4/search.html); the full search model comes with the search issue.
Unknown parameters are ignored and left out of the self link, or answer 400 with
``Prefer: handling=strict``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.core.errors import FhirError
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type, prefer
from fhir_server.rest.params import FORMAT_PARAMS, link, non_negative, page_size
from fhir_server.rest.render import bundle_bytes, entry_bytes, json_response, shape
from fhir_server.rest.request import FhirRequest, FhirResponse

KNOWN = ("_id", "_count", "_offset", "_total", *FORMAT_PARAMS)
FORM = ("application/x-www-form-urlencoded",)


def _criteria(request: FhirRequest) -> list[tuple[str, str]]:
    pairs = list(request.query)
    if request.method == "POST":
        check_content_type(request, FORM)
        pairs += parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    unknown = [k for k, _ in pairs if k not in KNOWN]
    if unknown and prefer(request, "handling") == "strict":
        raise FhirError(f"Unknown search parameter(s): {', '.join(unknown)}", unknown[0])
    return [(k, v) for k, v in pairs if k in KNOWN]


async def search_type(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    rtype = args["type"]
    ctx.service.check_type(rtype)
    criteria = _criteria(request)
    request.query = criteria
    ids = [i for k, v in criteria if k == "_id" for i in v.split(",") if i] or None
    count, offset = page_size(request, ctx.settings), non_negative(request, "_offset", 0)
    if request.param("_summary") == "count":
        count = 0
    page = await ctx.service.list_current(rtype, ids, count, offset)
    paging = [(k, v) for k, v in criteria if k != "_offset"]
    links = [{"relation": "self", "url": link(request, rtype, criteria)},
             {"relation": "first", "url": link(request, rtype, paging)}]
    if count and offset + count < page.total:
        links.append({"relation": "next",
                      "url": link(request, rtype, [*paging, ("_offset", str(offset + count))])})
    if offset and count:
        links.append({"relation": "previous", "url": link(
            request, rtype, [*paging, ("_offset", str(max(offset - count, 0)))])})
    header = {"resourceType": "Bundle", "type": "searchset", "total": page.total, "link": links}
    entries = (entry_bytes(f"{request.base_url}/{rtype}/{_id_of(content)}",
                           shape(content, request), {"search": {"mode": "match"}})
               for content in page.contents)
    return json_response(200, bundle_bytes(header, entries), request)


def _id_of(content: bytes) -> str:
    """The id of stored canonical bytes, which always start ``{"resourceType":…,"id":"…"``."""
    start = content.index(b'"id":"') + 6
    return content[start:content.index(b'"', start)].decode()
