"""A bulk ``$export`` kick-off, checked: what to export, from which level, how.

Spec: https://hl7.org/fhir/uv/bulkdata/STU2/export.html (kick-off request). Every bad
parameter is a FhirError (400) naming it; nothing is started then.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from fhir_server.core.errors import FhirError
from fhir_server.search.plan import AllOf, AnyOf, Node

FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?")
NEXT_FILTER = re.compile(r",(?=[A-Z][A-Za-z]*\?)")  # a comma that starts another query
ASSOCIATED = ("LatestProvenanceResources", "RelevantProvenanceResources")
TRUE = ("true", "1")


@dataclass(slots=True)
class ExportRequest:
    level: str  # "system", "patient" or "group"
    types: list[str]  # the types to export, in order
    since_ms: int | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)  # type -> search queries
    elements: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)  # ids: the Group's members, `patient`
    group: str | None = None
    deidentify: bool = False
    notes: list[str] = field(default_factory=list)  # warnings for the manifest's error file


def since_ms(value: str) -> int:
    """``_since`` as epoch milliseconds; a date is its first instant in UTC."""
    if not INSTANT.fullmatch(value):
        raise FhirError(f"_since must be a FHIR instant such as 2026-01-01T00:00:00Z, "
                        f"not {value!r}", "_since")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(f"_since is not a real instant: {value!r}", "_since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def parse_kickoff(pairs: list[tuple[str, str]], level: str, served: tuple[str, ...],
                  compartment: tuple[str, ...]) -> ExportRequest:
    """The request's parameters checked against the served types (``compartment``: the
    types of the Patient compartment, for the patient and group levels)."""
    allowed = served if level == "system" else tuple(dict.fromkeys(("Patient", *compartment)))
    wanted: list[str] = []
    request = ExportRequest(level, [])
    for name, value in pairs:
        if name == "_outputFormat":
            if value not in FORMATS:
                raise FhirError(f"_outputFormat {value!r} is not supported; use one of "
                                f"{', '.join(FORMATS)}", "_outputFormat")
        elif name == "_since":
            request.since_ms = since_ms(value)
        elif name == "_type":
            for rtype in (t.strip() for t in value.split(",") if t.strip()):
                if rtype not in allowed:
                    raise FhirError(f"_type {rtype!r} is not a type this server exports at "
                                    f"the {level} level", "_type")
                wanted.append(rtype)
        elif name == "_typeFilter":
            for query in NEXT_FILTER.split(value):
                rtype, mark, criteria = query.partition("?")
                if not mark or rtype not in allowed:
                    raise FhirError(f"_typeFilter {query!r} must be [type]?[search] for a "
                                    f"type exported at the {level} level", "_typeFilter")
                request.filters.setdefault(rtype, []).append(criteria)
        elif name == "_elements":
            request.elements += [e.strip() for e in value.split(",") if e.strip()]
        elif name == "patient":
            if level == "system":
                raise FhirError("patient is a parameter of Patient and Group $export",
                                "patient")
            rtype, _, pid = value.rpartition("/")
            if rtype.rsplit("/", 1)[-1] != "Patient" or not pid:
                raise FhirError(f"patient must reference a Patient, not {value!r}", "patient")
            request.patients.append(pid)
        elif name == "includeAssociatedData":
            if any(v not in ASSOCIATED for v in value.split(",")):
                raise FhirError(f"includeAssociatedData {value!r} is not supported",
                                "includeAssociatedData")
            request.notes.append(f"includeAssociatedData={value}: this server keeps no "
                                 "Provenance of its own, so none is included")
        elif name == "deidentify":
            request.deidentify = value.lower() in TRUE
        elif name not in ("_format", "_pretty"):
            raise FhirError(f"Unknown parameter {name!r} of $export", name)
    request.types = list(dict.fromkeys(wanted)) or list(allowed)
    stray = [t for t in request.filters if t not in request.types]
    if stray:
        raise FhirError(f"_typeFilter names {', '.join(stray)}, which _type leaves out",
                        "_typeFilter")
    return request


def any_of_filters(wheres: list[tuple[Node, ...]]) -> tuple[Node, ...]:
    """Several ``_typeFilter`` queries of one type: a resource matching any of them."""
    if len(wheres) == 1:
        return wheres[0]
    return (AnyOf(tuple(AllOf(w) for w in wheres)),)
