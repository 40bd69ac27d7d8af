"""Patient ``$everything``: https://hl7.org/fhir/R4/patient-operation-everything.html

``GET|POST [base]/Patient/[id]/$everything`` answers the patient, every resource of its
compartment (the official R4 Patient CompartmentDefinition) and, as include entries, the
resources they reference (practitioners, organisations, medications…; bounded by the
include limit, which the Bundle reports when hit), as a paged searchset Bundle.
``[base]/Patient/$everything`` does the same for every patient. Parameters: ``_since``
(only resources changed since that instant), ``_type`` (only these types), ``_count``
and paging, in the query or as a Parameters body. ``start`` / ``end`` (care dates) are
refused: no R4 definition says which date of each type they mean.
"""

from __future__ import annotations

import re

from fhir_server.core.errors import FhirError
from fhir_server.rest.context import Context
from fhir_server.rest.operations.parameters import operation_parameters
from fhir_server.rest.request import FhirRequest, FhirResponse
from fhir_server.rest.searchset import searchset

INSTANT = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                     r"(Z|[+-]\d{2}:\d{2})?)?)?)?")
PASSED = ("_count", "_page", "_lastUpdated", "_total", "_summary", "_elements", "_format",
          "_pretty", "_include", "_type")


async def everything(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    searcher = ctx.service.searcher
    pid = args.get("id")
    if pid is not None:
        await ctx.service.read("Patient", pid)  # 404 or 410 first
    types = ("Patient", *searcher.compartment_types("Patient"))
    pairs: list[tuple[str, str]] = [("_include", "*")]
    for name, value in await operation_parameters(request, "$everything", ctx.settings.max_depth):
        if name == "_since":
            if not INSTANT.fullmatch(value):
                raise FhirError(f"_since must be an instant, got {value!r}", "_since")
            pairs.append(("_lastUpdated", f"ge{value}"))
        elif name == "_type":
            wanted = [t for t in value.split(",") if t]
            for rtype in wanted:
                ctx.service.check_type(rtype)
            types = tuple(t for t in types if t in wanted)
            pairs.append((name, value))
        elif name in ("start", "end"):
            raise FhirError(f"{name} (care dates) is not supported by $everything here; use "
                            "_since or a compartment search with date criteria", name)
        elif name.split(":", 1)[0] in PASSED:
            if (name, value) != ("_include", "*"):  # always there (the next-page links)
                pairs.append((name, value))
        else:
            raise FhirError(f"Unknown parameter {name!r} of $everything", name)
    if not types:
        raise FhirError("_type names no type of the Patient compartment", "_type")
    node = searcher.whole_compartment("Patient", pid, types, owner="Patient" in types)
    path = f"Patient/{pid}/$everything" if pid else "Patient/$everything"
    return await searchset(ctx, request, types, path, (node,), pairs)
