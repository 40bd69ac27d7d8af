"""history: instance, type and system level (https://hl7.org/fhir/R4/http.html#history).

``_count``, ``_since``, ``_at``; newest first; paging by an opaque position (``_page``) that
stays stable while others write, since new versions only ever come before it.
"""

from __future__ import annotations

from fhir_server.core.versioning import etag, format_instant, parse_instant_ms
from fhir_server.rest.access_audit import touch
from fhir_server.rest.context import Context
from fhir_server.rest.params import FORMAT_PARAMS, link, non_negative, page_size
from fhir_server.rest.render import bundle_bytes, entry_bytes, json_response
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.storage.port import HistoryEntry, HistoryQuery

STATUS = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "200 OK"}


def _entry(request: FhirRequest, item: HistoryEntry) -> bytes:
    version = item.version
    url = f"{version.resource_type}/{version.id}"
    return entry_bytes(f"{request.base_url}/{url}", version.content, {
        "request": {"method": item.method,
                    "url": version.resource_type if item.method == "POST" else url},
        "response": {"status": STATUS[item.method], "etag": etag(version.version),
                     "lastModified": format_instant(version.last_updated_ms)},
    })


async def history(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    since, at = request.param("_since"), request.param("_at")
    query = HistoryQuery(
        resource_type=args.get("type"), id=args.get("id"),
        since_ms=parse_instant_ms(since, "_since") if since else None,
        at_ms=parse_instant_ms(at, "_at") if at else None,
        count=max(page_size(request, ctx.settings), 1),
        before_seq=non_negative(request, "_page", 0) or None,
    )
    page = await ctx.service.history(query)
    for entry in page.entries if query.id is None else ():
        touch(request, f"{entry.version.resource_type}/{entry.version.id}",
              entry.version.content)
    path = "/".join(p for p in (args.get("type"), args.get("id"), "_history") if p)
    kept = [(k, v) for k, v in request.query
            if k in ("_count", "_since", "_at", *FORMAT_PARAMS)]
    links = [{"relation": "self", "url": link(request, path, request.query)}]
    if page.next_seq is not None:
        links.append({"relation": "next",
                      "url": link(request, path, [*kept, ("_page", str(page.next_seq))])})
    header = {"resourceType": "Bundle", "type": "history", "total": page.total, "link": links}
    body = bundle_bytes(header, (_entry(request, e) for e in page.entries))
    return json_response(200, body, request)
