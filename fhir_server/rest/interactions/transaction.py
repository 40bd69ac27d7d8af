"""transaction and batch: ``POST [base]`` with a Bundle (https://hl7.org/fhir/R4/http.html#transaction).

A transaction commits all its writes atomically (see ``core/transaction.py``), then answers
its GET entries; a batch runs each entry on its own through the same router as any request.
Entry responses carry status, location, etag and lastModified; resources are included
for reads and when ``Prefer: return=representation``.
"""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import parse_qsl

import orjson

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import parse_json_off_loop
from fhir_server.core.slices import Slices
from fhir_server.core.transaction import (
    Entry,
    Outcome,
    TransactionPlanner,
    parse_bundle,
    parse_entry,
)
from fhir_server.core.versioning import etag, format_instant
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import check_content_type, prefer
from fhir_server.rest.render import bundle_bytes, error_response, json_response
from fhir_server.rest.request import FhirRequest, FhirResponse


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _entry_request(entry: Entry, outer: FhirRequest) -> FhirRequest:
    path, _, query = entry.url.partition("?")
    headers = {"content-type": "application/fhir+json"}
    body = jsonbytes.dumps(entry.resource) if entry.resource is not None else b""
    if entry.method == "PATCH" and (entry.resource or {}).get("resourceType") == "Binary":
        headers["content-type"] = entry.resource.get("contentType", "")  # type: ignore[union-attr]
        body = base64.b64decode(entry.resource.get("data", ""))  # type: ignore[union-attr]
    if entry.if_match is not None:
        headers["if-match"] = etag(entry.if_match)
    if entry.if_none_exist:
        headers["if-none-exist"] = entry.if_none_exist
    for name in ("prefer", "x-purpose-of-use", "x-break-glass-reason"):
        if outer.header(name):
            headers[name] = outer.headers[name]
    return FhirRequest(entry.method, path, parse_qsl(query, keep_blank_values=True), headers,
                       body, outer.base_url, grant=outer.grant)


def _from_response(response: FhirResponse) -> bytes:
    headers = dict(response.headers)
    answer: dict = {"status": _status(response.status)}
    for header, field in (("location", "location"), ("etag", "etag"),
                          ("last-modified", "lastModified")):
        if header in headers:
            answer[field] = headers[header]
    if "location" in answer:
        answer["location"] = answer["location"].split("/fhir/", 1)[-1]
    if "lastModified" in answer:
        moment = parsedate_to_datetime(answer["lastModified"])
        answer["lastModified"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [b'"response":' + jsonbytes.dumps(answer)]
    if response.body and response.status < 300:
        parts.insert(0, b'"resource":' + response.body)
    elif response.body:
        answer["outcome"] = orjson.loads(response.body)
        parts = [b'"response":' + jsonbytes.dumps(answer)]
    return b"{" + b",".join(parts) + b"}"


def _from_write(outcome: Outcome, base_url: str, representation: bool) -> bytes:
    stored = outcome.stored
    if stored is None or stored.deleted:
        answer = {"status": _status(outcome.status)}
        return b'{"response":' + jsonbytes.dumps(answer) + b"}"
    answer = {"status": _status(outcome.status),
              "location": f"{stored.resource_type}/{stored.id}/_history/{stored.version}",
              "etag": etag(stored.version),
              "lastModified": format_instant(stored.last_updated_ms)}
    head = b'{"fullUrl":' + jsonbytes.dumps(f"{base_url}/{stored.resource_type}/{stored.id}")
    if representation:
        head += b',"resource":' + stored.content
    return head + b',"response":' + jsonbytes.dumps(answer) + b"}"


async def transaction(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    check_content_type(request)
    bundle = await parse_json_off_loop(request.body, max_depth=ctx.settings.max_depth)
    kind = parse_bundle(bundle, max_entries=ctx.settings.max_bundle_entries)
    raw_entries = bundle.get("entry", [])
    if kind == "batch":
        return await _batch(ctx, request, raw_entries)
    entries = [parse_entry(raw, i, request.base_url) for i, raw in enumerate(raw_entries)]
    for entry in entries:  # with auth on, the token must allow every entry
        await ctx.authorize(_entry_request(entry, request))
    results = await TransactionPlanner(ctx.service).commit(entries)
    representation = prefer(request, "return") == "representation"
    out: list[bytes] = []
    for entry in entries:
        if entry.index in results:
            out.append(_from_write(results[entry.index], request.base_url, representation))
        else:
            response = await ctx.dispatch(_entry_request(entry, request))
            if response.status >= 400:
                raise FhirError(f"{entry.method} {entry.url} failed with {response.status}",
                                f"{entry.where}.request")
            out.append(_from_response(response))
    header = {"resourceType": "Bundle", "type": "transaction-response"}
    return json_response(200, bundle_bytes(header, out), request)


async def _batch(ctx: Context, request: FhirRequest, raw_entries: list) -> FhirResponse:
    out: list[bytes] = []
    slices = Slices(len(raw_entries))
    for index, raw in enumerate(raw_entries):
        await slices.pause()
        try:
            entry = parse_entry(raw, index, request.base_url)
        except FhirError as error:
            out.append(_from_response(error_response(error)))
            continue
        response = await ctx.dispatch(_entry_request(entry, request))
        out.append(_from_response(response))
    header = {"resourceType": "Bundle", "type": "batch-response"}
    return json_response(200, bundle_bytes(header, out), request)
