"""Parse request bodies once, with errors a client can act on (https://hl7.org/fhir/R4/json.html)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import orjson

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.types import Resource

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 64  # objects and arrays within each other (Settings.max_depth)
OFF_LOOP_BYTES = 256 * 1024  # bodies parsed in a thread from this size on
DEPTH_CEILING = 200  # orjson serialises at most 254 levels; the recursive checks need room


def parse_json(body: bytes, what: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON; a 400 names the line and column of the first error, or the
    place where the nesting goes deeper than ``max_depth``."""
    if body.startswith(BOM):
        body = body[len(BOM):]
    if not body.strip():
        raise FhirError(f"The request {what} is empty")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FhirError(f"The request {what} is not valid UTF-8 (byte {error.start})") from None
    try:
        value = jsonbytes.loads(body)  # decimals kept as written
    except msgspec.DecodeError:
        try:  # orjson tells the line and column
            orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise FhirError(f"Malformed JSON at line {error.lineno}, column {error.colno}: "
                            f"{error.msg}") from None
        raise FhirError("Malformed JSON") from None
    limit = min(max_depth, DEPTH_CEILING)
    if body.count(b"{") + body.count(b"[") > limit:  # else it cannot nest deeper
        check_depth(value, limit, what)
    return value


async def parse_json_off_loop(body: bytes, what: str = "body",
                              max_depth: int = MAX_DEPTH) -> Any:
    """``parse_json`` in a thread for a large body (the event loop keeps answering other
    requests while 15 MB are parsed and their depth checked), inline for a small one."""
    if len(body) < OFF_LOOP_BYTES:
        return parse_json(body, what, max_depth)
    return await asyncio.to_thread(parse_json, body, what, max_depth)


def check_depth(value: Any, limit: int, what: str = "body") -> None:
    """400 if objects and arrays nest deeper than ``limit`` (iterative: any depth is safe)."""
    if _deeper_than(value, limit):
        raise FhirError(f"The request {what} nests objects and arrays deeper than {limit} "
                        "levels", _path_to_depth(value, limit))


def _path_to_depth(value: Any, limit: int) -> str:
    """Where the nesting first passes ``limit`` (FHIRPath-like), for the error."""
    path = value.get("resourceType", "$") if isinstance(value, dict) else "$"
    for _ in range(limit):
        keyed = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in keyed:
            if isinstance(child, dict | list) and _deeper_than(child, limit - 1):
                path += f".{key}" if isinstance(key, str) else f"[{key}]"
                value, limit = child, limit - 1
                break
    return path


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether objects and arrays in ``value`` (itself level 1) nest beyond ``levels``."""
    if levels < 1:
        return True
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= levels:
                    return True
                stack.append((child, depth + 1))
    return False


async def parse_resource(body: bytes, max_depth: int = MAX_DEPTH) -> Resource:
    """A JSON object with a resourceType, as every FHIR resource body must be."""
    value = await parse_json_off_loop(body, max_depth=max_depth)
    if not isinstance(value, dict):
        raise FhirError("The request body must be a JSON object (a FHIR resource)")
    if not isinstance(value.get("resourceType"), str):
        raise FhirError("The resource has no resourceType", "resourceType")
    return value


def dumps(value: Any, pretty: bool = False) -> bytes:
    return jsonbytes.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
