"""Terminology operations on the CodeSystems, ValueSets and ConceptMaps stored here.

CodeSystem ``$lookup``, ``$validate-code``, ``$subsumes``; ValueSet ``$expand`` (``filter``
matches codes, Chinese displays, English designations and pinyin: ``nk`` and ``neike`` find
内科; ``count`` / ``offset`` page) and ``$validate-code``; ConceptMap ``$translate``.
Spec: https://hl7.org/fhir/R4/terminology-service.html. Results are Parameters (or a
ValueSet with an expansion) as plain dicts.
"""

from __future__ import annotations

from typing import Any

from fhir_server.core.errors import FhirError, NotFound
from fhir_server.core.terminology import Concept, Hierarchy, Terminology
from fhir_server.search.normalize import normalize, pinyin_forms
from fhir_server.search.values import non_negative
from fhir_server.types import Resource

Params = dict[str, str]


def parameters(*pairs: tuple[str, Any]) -> Resource:
    """A Parameters resource from (name, value) pairs; the value's type names the key."""
    out = []
    for name, value in pairs:
        if isinstance(value, bool):
            out.append({"name": name, "valueBoolean": value})
        elif isinstance(value, dict):
            out.append({"name": name, **value})
        elif value is not None:
            out.append({"name": name, "valueString": str(value)})
    return {"resourceType": "Parameters", "parameter": out}


def _require(params: Params, *names: str) -> list[str]:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise FhirError(f"Missing parameter(s): {', '.join(missing)}", missing[0])
    return [params[n] for n in names]


def _matches(concept: Concept, needle: str) -> bool:
    if not needle:
        return True
    folded = normalize(needle).replace(" ", "")
    haystack = [concept.code.lower(), normalize(concept.display).replace(" ", ""),
                normalize(concept.english).replace(" ", ""), *pinyin_forms(concept.display)]
    return any(folded in text for text in haystack)


class TerminologyOperations:
    def __init__(self, terminology: Terminology) -> None:
        self.terminology = terminology

    async def _code_system(self, url: str) -> tuple[Resource, Hierarchy]:
        code_system = await self.terminology.by_url("CodeSystem", url)
        if code_system is None:
            raise NotFound(f"No CodeSystem with url {url} is stored on this server", "system")
        return code_system, Hierarchy(code_system)

    async def lookup(self, params: Params) -> Resource:
        system, code = _require(params, "system", "code")
        code_system, hierarchy = await self._code_system(system)
        if code not in hierarchy.concepts:
            raise NotFound(f"{code} is not a code of {system}", "code")
        concept = hierarchy.concept(system, code)
        pairs: list[tuple[str, Any]] = [("name", code_system.get("name")),
                                        ("version", code_system.get("version")),
                                        ("display", concept.display)]
        pairs += [("designation", {"part": [
            {"name": "language", "valueCode": d.get("language", "")},
            {"name": "value", "valueString": d["value"]}]})
            for d in hierarchy.concepts[code].get("designation", [])]
        if code in hierarchy.parent:
            pairs.append(("property", {"part": [
                {"name": "code", "valueCode": "parent"},
                {"name": "value", "valueCode": hierarchy.parent[code]}]}))
        pairs += [("property", {"part": [{"name": "code", "valueCode": "child"},
                                         {"name": "value", "valueCode": child}]})
                  for child in hierarchy.children.get(code, [])]
        return parameters(*pairs)

    async def validate_code_system(self, params: Params) -> Resource:
        system = params.get("url") or params.get("system") or ""
        (code,) = _require(params, "code")
        if not system:
            raise FhirError("Missing parameter: url", "url")
        _, hierarchy = await self._code_system(system)
        return self._verdict(hierarchy.concept(system, code) if code in hierarchy.concepts
                             else None, system, code, params.get("display"))

    async def subsumes(self, params: Params) -> Resource:
        system, code_a, code_b = _require(params, "system", "codeA", "codeB")
        _, hierarchy = await self._code_system(system)
        for code in (code_a, code_b):
            if code not in hierarchy.concepts:
                raise NotFound(f"{code} is not a code of {system}", "codeA")
        if code_a == code_b:
            outcome = "equivalent"
        elif code_a in hierarchy.above(code_b):
            outcome = "subsumes"
        elif code_b in hierarchy.above(code_a):
            outcome = "subsumed-by"
        else:
            outcome = "not-subsumed"
        return parameters(("outcome", {"valueCode": outcome}))

    async def expand(self, params: Params) -> Resource:
        (url,) = _require(params, "url")
        concepts = await self.terminology.expand(url, {}, "url")
        found = [c for c in concepts if c.code and _matches(c, params.get("filter", ""))]
        offset = non_negative(params.get("offset"), "offset", 0)
        count = non_negative(params.get("count"), "count", len(found))
        page = found[offset: offset + count]
        contains = [{"system": c.system, "code": c.code, "display": c.display,
                     **({"designation": [{"language": "en", "value": c.english}]}
                        if c.english else {})} for c in page]
        expansion: Resource = {"timestamp": "2026-01-01T00:00:00Z", "total": len(found),
                               "offset": offset}
        if params.get("filter"):
            expansion["parameter"] = [{"name": "filter", "valueString": params["filter"]}]
        if contains:
            expansion["contains"] = contains
        value_set = await self.terminology.by_url("ValueSet", url) or {}
        return {"resourceType": "ValueSet", "url": url, "status": value_set.get("status",
                                                                              "active"),
                "expansion": expansion}

    async def validate_value_set(self, params: Params) -> Resource:
        url, code = _require(params, "url", "code")
        system = params.get("system", "")
        concepts = await self.terminology.expand(url, {}, "url")
        found = next((c for c in concepts if c.code == code
                      and (not system or c.system == system)), None)
        return self._verdict(found, system or url, code, params.get("display"))

    async def translate(self, params: Params) -> Resource:
        url, code = _require(params, "url", "code")
        concept_map = await self.terminology.by_url("ConceptMap", url)
        if concept_map is None:
            raise NotFound(f"No ConceptMap with url {url} is stored on this server", "url")
        system = params.get("system", "")
        matches = [
            ("match", {"part": [
                {"name": "equivalence", "valueCode": target.get("equivalence", "equivalent")},
                {"name": "concept", "valueCoding": {"system": group.get("target", ""),
                                                    "code": target.get("code", "")}}]})
            for group in concept_map.get("group", [])
            if not system or group.get("source") == system
            for element in group.get("element", []) if element.get("code") == code
            for target in element.get("target", [])]
        message = None if matches else f"{code} has no mapping in {url}"
        return parameters(("result", bool(matches)), ("message", message), *matches)

    @staticmethod
    def _verdict(concept: Concept | None, where: str, code: str,
                 display: str | None) -> Resource:
        if concept is None:
            return parameters(("result", False), ("message", f"{code} is not in {where}"))
        if display and display not in (concept.display, concept.english):
            return parameters(("result", False), ("display", concept.display),
                              ("message", f"The display of {code} is {concept.display}"))
        return parameters(("result", True), ("display", concept.display))

