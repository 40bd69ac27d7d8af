"""``_summary`` and ``_elements`` (https://hl7.org/fhir/R4/search.html#summary)."""

from __future__ import annotations

from typing import Any

from fhir_server.core.errors import FhirError
from fhir_server.types import Resource
from fhir_server.validation.structure import StructureTable

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "Resource encoded in summary mode"}
ALWAYS = ("resourceType", "id", "meta")


def _mark(resource: Resource) -> Resource:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), SUBSETTED]
    resource["meta"] = meta
    return resource


def _summary_object(value: Resource, type_key: str, table: StructureTable) -> Resource:
    rules = table.rules(type_key)
    if rules is None:
        return value
    kept: dict[str, Any] = {}
    for key, item in value.items():
        element = rules.elements.get(key.removeprefix("_"))
        if key == "resourceType" or (element is not None and element.summary):
            if element is not None and element.type.startswith("#"):
                item = ([_summary_object(i, element.type, table) for i in item]
                        if isinstance(item, list) else _summary_object(item, element.type, table))
            kept[key] = item
    return kept


def summarize(resource: Resource, mode: str, table: StructureTable) -> Resource:
    """The resource as ``_summary=mode`` asks."""
    if mode == "false":
        return resource
    if mode == "true":
        return _mark(_summary_object(resource, resource["resourceType"], table))
    if mode == "text":
        rules = table.rules(resource["resourceType"])
        required = set(rules.required) if rules else set()
        kept = {k: v for k, v in resource.items() if k in (*ALWAYS, "text") or k in required}
        return _mark(kept)
    if mode == "data":
        return _mark({k: v for k, v in resource.items() if k != "text"})
    raise FhirError(f"_summary={mode} is not allowed here; use one of true, text, data, false",
                    "_summary")


def select_elements(resource: Resource, elements: list[str], table: StructureTable) -> Resource:
    """Only the named top-level elements, plus the mandatory ones (min 1: a client's
    parser needs them, e.g. ``ValueSet.status``), marked SUBSETTED. A choice element is
    named by its base (``value`` or ``value[x]`` keeps ``valueQuantity``)."""
    wanted = {e.strip().split(".")[-1].removesuffix("[x]") for e in elements if e.strip()}
    rules = table.rules(resource.get("resourceType", ""))
    if rules is not None:
        wanted.update(rules.required)

    def kept(key: str) -> bool:
        name = key.removeprefix("_")
        element = rules.elements.get(name) if rules is not None else None
        return name in wanted or (element is not None and element.choice in wanted)

    return _mark({k: v for k, v in resource.items() if k in ALWAYS or kept(k)})
