"""Parse request bodies once, with errors a client can act on (https://hl7.org/fhir/R4/json.html)."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.core.errors import FhirError
from fhir_server.types import Resource

BOM = b"\xef\xbb\xbf"


def parse_json(body: bytes, what: str = "body") -> Any:
    """Decode UTF-8 JSON; a 400 names the line and column of the first error."""
    if body.startswith(BOM):
        body = body[len(BOM):]
    if not body.strip():
        raise FhirError(f"The request {what} is empty")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FhirError(f"The request {what} is not valid UTF-8 (byte {error.start})") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise FhirError(f"Malformed JSON at line {error.lineno}, column {error.colno}: "
                        f"{error.msg}") from None


def parse_resource(body: bytes) -> Resource:
    """A JSON object with a resourceType, as every FHIR resource body must be."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise FhirError("The request body must be a JSON object (a FHIR resource)")
    if not isinstance(value.get("resourceType"), str):
        raise FhirError("The resource has no resourceType", "resourceType")
    return value


def dumps(value: Any, pretty: bool = False) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
