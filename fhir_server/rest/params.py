"""Query parameters shared by history and search: ``_count``, paging, self links."""

from __future__ import annotations

from urllib.parse import urlencode

from fhir_server.config import Settings
from fhir_server.rest.request import FhirRequest
from fhir_server.search.values import non_negative as non_negative_value

FORMAT_PARAMS = ("_format", "_pretty", "_summary", "_elements")


def non_negative(request: FhirRequest, name: str, default: int) -> int:
    return non_negative_value(request.param(name), name, default)


def page_size(request: FhirRequest, settings: Settings) -> int:
    """``_count`` bounded by the configured maximum (0 is allowed: total only)."""
    return min(non_negative(request, "_count", settings.default_count), settings.max_count)


def link(request: FhirRequest, path: str, pairs: list[tuple[str, str]]) -> str:
    query = urlencode(pairs)
    return f"{request.base_url}/{path}" + (f"?{query}" if query else "")
