"""Hints that tell how to mend a missing coding: the ConceptMaps of the alliance package
that translate a code the resource carries into the system a profile asks for (a member's
local LIS code into LOINC)."""

from __future__ import annotations

from collections.abc import Iterable

from fhir_server.types import Resource


class CodingHints:
    """What the ConceptMaps of a package translate: (source system, code, target system)
    → (map url, target code)."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.codes: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.maps: dict[tuple[str, str], str] = {}
        for resource in resources:
            if resource.get("resourceType") != "ConceptMap":
                continue
            for group in resource.get("group") or []:
                source, target = group.get("source", ""), group.get("target", "")
                self.maps.setdefault((source, target), resource.get("url", ""))
                for element in group.get("element") or []:
                    for mapped in element.get("target") or []:
                        if mapped.get("code"):
                            self.codes.setdefault((source, element.get("code", ""), target),
                                                  (resource.get("url", ""), mapped["code"]))

    def hint(self, codings: Iterable[object], system: str) -> str:
        """Add a coding of ``system``, and which ConceptMap translates one the resource has."""
        text = f"add a coding with system {system}"
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            source, code = coding.get("system", ""), coding.get("code", "")
            found = self.codes.get((source, code, system))
            if found is not None:
                return (f"{text}; the ConceptMap {found[0]} translates {source}|{code} to "
                        f"{system}|{found[1]} (ConceptMap/$translate)")
            url = self.maps.get((source, system))
            if url:
                return (f"{text}; the ConceptMap {url} maps {source} codes to {system}, but "
                        f"not {code}")
        return text
