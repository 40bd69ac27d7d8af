"""Content negotiation: ``_format``, ``Accept``, ``Content-Type``, ``_pretty``, ``Prefer``.

Spec: https://hl7.org/fhir/R4/http.html#mime-type. JSON only; XML answers 406 / 415.
"""

from __future__ import annotations

import re

from fhir_server.core.errors import NotAcceptable, UnsupportedMediaType
from fhir_server.rest.request import FhirRequest

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": FHIR_JSON, "text/json": FHIR_JSON,
                  "application/fhir+json": FHIR_JSON, "application/json+fhir": FHIR_JSON}
CONTENT_TYPE = "application/fhir+json; charset=utf-8"


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def check_accept(request: FhirRequest) -> None:
    """Raise 406 unless the client accepts FHIR JSON."""
    fmt = request.param("_format")
    if fmt is not None:
        if _media(fmt) not in FORMAT_ALIASES:
            raise NotAcceptable(f"_format={fmt} is not supported; this server speaks JSON",
                                "_format")
        return
    accept = request.header("accept")
    if not accept:
        return
    for part in accept.split(","):
        media = _media(part)
        if media in JSON_TYPES or media in ("*/*", "application/*", "") or media.endswith("json"):
            return
    raise NotAcceptable(f"Accept: {accept} is not supported; this server speaks "
                        "application/fhir+json", "Accept")


def check_content_type(request: FhirRequest, allowed: tuple[str, ...] = JSON_TYPES) -> str:
    """The body's media type, raising 415 if it is not one of ``allowed``."""
    content_type = request.header("content-type")
    media = _media(content_type) if content_type else FHIR_JSON
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {content_type} is not supported; use {', '.join(allowed)}",
            "Content-Type")
    return media


def is_pretty(request: FhirRequest) -> bool:
    return request.param("_pretty") == "true"


def prefer(request: FhirRequest, name: str) -> str | None:
    """One token of the Prefer header, e.g. ``prefer(req, "return")`` -> ``"minimal"``."""
    for part in re.split(r"[;,]", request.header("prefer") or ""):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"').lower()
    return None
