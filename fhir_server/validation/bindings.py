"""Coded values checked against the R4 core: the bindings of the base definitions and the
core CodeSystems (https://hl7.org/fhir/R4/terminologies.html#strength).

A ``required`` binding not met is an error, ``extensible`` a warning, ``preferred`` an
information, as the HL7 validator reports them; a Coding whose system is a core CodeSystem
of complete content must name one of its codes. The ValueSets and CodeSystems come from the
generated table ``r4_terminology.json`` (``scripts/generate_core_terminology.py``), which
holds only what the official package defines in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources as package_files
from typing import Any

import orjson

from fhir_server.outcome import Issue

SEVERITY = {"required": "error", "extensible": "warning", "preferred": "information"}
SHOULD = {"required": "a code is required from this value set",
          "extensible": "a code should come from this value set unless it has no suitable "
                        "code",
          "preferred": "a code is recommended to come from this value set"}


@dataclass(frozen=True, slots=True)
class ValueSet:
    url: str
    name: str
    codes: dict[str, frozenset[str]]  # system -> codes
    any_system: frozenset[str]  # every code, whatever its system (for ``code`` elements)

    def has(self, system: Any, code: Any) -> bool:
        return code in self.codes.get(system, ())

    def shown(self) -> str:
        return f"'{self.name}' ({self.url})"


@dataclass(frozen=True, slots=True)
class CodeSystem:
    url: str
    name: str
    codes: frozenset[str]
    case_sensitive: bool

    def has(self, code: str) -> bool:
        return code in self.codes if self.case_sensitive else code.lower() in self.codes


Binding = tuple[str, ValueSet]  # strength, ValueSet


class CoreTerminology:
    """The core bindings by type and element, and the core CodeSystems."""

    def __init__(self, raw: dict[str, Any]) -> None:
        value_sets = {
            url: ValueSet(url, vs["name"], {s: frozenset(c) for s, c in vs["codes"].items()},
                          frozenset(code for c in vs["codes"].values() for code in c))
            for url, vs in raw["valueSets"].items()
        }
        self.bindings: dict[str, dict[str, Binding]] = {
            key: {name: (strength, value_sets[url]) for name, (strength, url) in names.items()}
            for key, names in raw["bindings"].items()
        }
        self.systems = {
            url: CodeSystem(url, cs["name"], frozenset(
                cs["codes"] if cs["caseSensitive"] else (c.lower() for c in cs["codes"])),
                cs["caseSensitive"])
            for url, cs in raw["codeSystems"].items()
        }

    def of_type(self, type_code: str) -> dict[str, Binding]:
        """The bound elements of a type or backbone element, by JSON name."""
        return self.bindings.get(type_code.removeprefix("#"), {})

    def check_coding(self, coding: dict[str, Any], path: str, issues: list[Issue]) -> None:
        """An unknown code in a core CodeSystem of complete content."""
        system, code = coding.get("system"), coding.get("code")
        known = self.systems.get(system) if isinstance(system, str) else None
        if known is not None and isinstance(code, str) and not known.has(code):
            issues.append(Issue("code-invalid", f"Unknown code '{code}' in the CodeSystem "
                                f"'{known.name}' ({system})", f"{path}.code"))

    def check_bound(self, value: Any, type_code: str, binding: Binding, path: str,
                    issues: list[Issue]) -> None:
        """One value of a bound element (``code``, ``Coding`` or ``CodeableConcept``)."""
        strength, value_set = binding
        if type_code == "code":
            if not isinstance(value, str) or value in value_set.any_system:
                return
            found = f"The value provided ('{value}') is"
        elif type_code == "Coding":
            if not isinstance(value, dict) or "code" not in value \
                    or value_set.has(value.get("system"), value.get("code")):
                return
            found = f"The Coding provided ({_coding(value)}) is"
        else:
            codings = value.get("coding") if isinstance(value, dict) else None
            if not isinstance(codings, list) or not codings:
                if strength != "preferred" and isinstance(value, dict):
                    issues.append(Issue("code-invalid", "No code provided, and "
                                        f"{SHOULD[strength]} {value_set.shown()}", path,
                                        SEVERITY[strength]))
                return
            if any(isinstance(c, dict) and value_set.has(c.get("system"), c.get("code"))
                   for c in codings):
                return
            shown = ", ".join(_coding(c) for c in codings if isinstance(c, dict))
            found = f"None of the codings provided ({shown}) are"
        issues.append(Issue("code-invalid", f"{found} not in the value set {value_set.shown()}, "
                            f"and {SHOULD[strength]}", path, SEVERITY[strength]))


def _coding(coding: dict[str, Any]) -> str:
    return f"{coding.get('system', '')}#{coding.get('code', '')}"


@cache
def core_terminology() -> CoreTerminology:
    """The shipped table, loaded once per process."""
    raw = package_files.files("fhir_server.validation").joinpath("r4_terminology.json")
    return CoreTerminology(orjson.loads(raw.read_bytes()))
