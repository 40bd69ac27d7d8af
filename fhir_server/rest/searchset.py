"""Search requests in, searchset Bundles out: shared by type, system and compartment search.

Criteria come from the query string and, for ``POST …/_search``, the form body. Unknown
parameters are left out of the self link (lenient) or refused (``Prefer: handling=strict``).
Links: self, first, next and previous, paging by signed ``_page`` tokens.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from fhir_server.core.jsonio import dumps
from fhir_server.core.search import SearchResult
from fhir_server.outcome import Issue, operation_outcome
from fhir_server.rest.access_audit import touch
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type, prefer
from fhir_server.rest.params import link
from fhir_server.rest.render import bundle_bytes, entry_bytes, json_response, shape
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.search.plan import Node

FORM = ("application/x-www-form-urlencoded",)
PRESENTATION = ("_format", "_pretty", "_summary", "_elements")


def criteria(request: FhirRequest) -> list[tuple[str, str]]:
    """Query pairs plus, for POST ``_search``, the form body's pairs."""
    pairs = list(request.query)
    if request.method == "POST":
        check_content_type(request, FORM)
        pairs += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    return pairs


async def searchset(ctx: Context, request: FhirRequest, types: tuple[str, ...], path: str,
                    extra: tuple[Node, ...] = (),
                    pairs: list[tuple[str, str]] | None = None) -> FhirResponse:
    """Run a search (of the request's criteria, or of ``pairs``) and answer with its
    searchset Bundle."""
    pairs = criteria(request) if pairs is None else pairs
    summary = next((v for k, v in reversed(pairs) if k == "_summary"), None)
    if summary == "count":
        pairs = [(k, v) for k, v in pairs if k not in ("_count", "_total")]
        pairs += [("_count", "0"), ("_total", "accurate")]
    total_asked = next((v for k, v in reversed(pairs) if k == "_total"), None)
    counting = ("_count", "0") in pairs or ("_totalMethod", "count") in pairs  # (fhirpy)
    pairs = [(k, v) for k, v in pairs if k != "_totalMethod"]
    if total_asked is None and counting:  # the count is wanted
        pairs.append(("_total", "accurate"))
    searcher = ctx.service.searcher
    parsed = await searcher.parse_request(types, pairs, prefer(request, "handling") == "strict",
                                          request.base_url)
    page_token = next((v for k, v in reversed(pairs) if k == "_page"), None)
    result = await searcher.search(parsed, page_token, extra)
    for match in (*result.page.matches, *result.page.included):
        touch(request, f"{match.resource_type}/{match.id}", match.content)
    request.query = [(k, v) for k, v in pairs if k in PRESENTATION] + [
        (k, v) for k, v in parsed.used if k not in PRESENTATION]
    if total_asked == "none":  # storage gives the totals it knows cheaply; not wanted here
        result = replace(result, page=replace(result.page, total=None))
    return json_response(200, _bundle(request, path, result, page_token), request)


def _bundle(request: FhirRequest, path: str, result: SearchResult,
            page_token: str | None) -> bytes:
    kept = request.query
    links = [{"relation": "self", "url": link(request, path, kept + (
        [("_page", page_token)] if page_token else []))},
             {"relation": "first", "url": link(request, path, kept)}]
    if result.next_token:
        links.append({"relation": "next",
                      "url": link(request, path, [*kept, ("_page", result.next_token)])})
    if result.previous_token:
        links.append({"relation": "previous",
                      "url": link(request, path, [*kept, ("_page", result.previous_token)])})
    header: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if result.page.total is not None:
        header["total"] = result.page.total
    header["link"] = links
    base = request.base_url
    entries = [entry_bytes(f"{base}/{m.resource_type}/{m.id}", shape(m.content, request),
                           {"search": {"mode": "match"}}) for m in result.page.matches]
    entries += [entry_bytes(f"{base}/{m.resource_type}/{m.id}", shape(m.content, request),
                            {"search": {"mode": "include"}}) for m in result.page.included]
    if result.page.include_limit_hit:
        warning = Issue("too-costly", "_include/_revinclude found more resources than the "
                        "include limit; the rest are left out", "_include", "warning")
        outcome = dumps(operation_outcome([warning]))
        entries.append(b'{"resource":' + outcome + b',"search":{"mode":"outcome"}}')
    return bundle_bytes(header, entries)
