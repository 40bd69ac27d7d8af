"""``GET [base]`` with no type: a clear 400 (system search is not offered)."""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.rest.context import Context
from fhir_server.rest.request import FhirRequest, FhirResponse


async def root(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    raise FhirError("GET on the base URL needs a resource type, e.g. GET [base]/Patient; "
                    "see [base]/metadata for what this server supports")
