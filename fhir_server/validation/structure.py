"""R4 structure validation of JSON resources (https://hl7.org/fhir/R4/json.html).

Checks element names, cardinality, JSON types, choice types, primitive formats (the spec's
regexes), required elements, primitive ``_name`` companions, contained resources, extension
shape (ext-1), empty values (ele-1), reference syntax, and coded values against the core
bindings and CodeSystems (``bindings.py``). Rules come from the generated table
``r4_structure.json`` (``scripts/generate_structure.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources as package_files
from typing import Any

import orjson

from fhir_server.outcome import Issue
from fhir_server.types import Resource
from fhir_server.validation.bindings import Binding, CoreTerminology, core_terminology
from fhir_server.validation.bundle import bundle_rules
from fhir_server.validation.invariants import Invariants
from fhir_server.validation.narrative import check_narrative

INT32 = (-(2**31), 2**31 - 1)
INT_RANGES = {"integer": INT32, "positiveInt": (1, INT32[1]), "unsignedInt": (0, INT32[1])}
REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/]+)(/_history/[^/]+)?")
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")  # linear; the spec's regex backtracks badly
WHITESPACE = re.compile(r"\s+")
MAX_DEPTH = 64  # elements deep; real resources stay far below, attackers do not
MAX_STRING = 1024 * 1024  # "Strings SHALL NOT exceed 1MB in size" (R4 datatypes)


Scope = tuple[Resource, Resource]  # the resource an element is in, and the outermost one


@dataclass(frozen=True, slots=True)
class Element:
    """One allowed JSON property of a type."""

    type: str  # a type code, or "#key" of a backbone element
    min: int
    max: int  # -1 for unbounded
    summary: bool
    choice: str  # the choice element's base name ("value"), else ""


@dataclass(frozen=True, slots=True)
class TypeRules:
    elements: dict[str, Element]
    required: tuple[str, ...]  # element names, or choice bases, with min >= 1
    choices: dict[str, tuple[str, ...]]  # base -> JSON names


@dataclass(frozen=True, slots=True)
class Primitive:
    json: str
    regex: re.Pattern[str] | None


DATE_ONLY = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
TIME_WITHOUT_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def _format_hint(code: str, value: str) -> str:
    """What is wrong with a date or time that does not match its type's format."""
    if code in ("dateTime", "instant") and TIME_WITHOUT_ZONE.fullmatch(value):
        return (": a time needs its zone, e.g. "
                f"{value if value.count(':') > 1 else value + ':00'}+08:00 or …Z")
    if code == "dateTime" and "T" in value and value.count(":") == 1:
        return ": a time needs seconds (hh:mm:ss)"
    if code == "instant" and DATE_ONLY.fullmatch(value):
        return ": an instant needs a date, a time with seconds and a zone"
    return ""


class StructureTable:
    """The compiled R4 structure table: resource names, type rules, primitives."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.resources: frozenset[str] = frozenset(raw["resources"])
        self.primitives = {
            code: Primitive(p["json"], re.compile(p["regex"], re.ASCII) if p["regex"] else None)
            for code, p in raw["primitives"].items()
        }
        self.types = {key: self._rules(elements) for key, elements in raw["types"].items()}
        self.invariants: dict[str, list[list[str]]] = raw.get("invariants", {})
        self.extensions: dict[str, list[Any]] = raw.get("extensions", {})

    @staticmethod
    def _rules(raw: dict[str, list[Any]]) -> TypeRules:
        elements = {
            name: Element(codes[0] if codes else "string", min_, max_, summary, choice)
            for name, (codes, min_, max_, summary, choice) in raw.items()
        }
        choices: dict[str, list[str]] = {}
        for name, element in elements.items():
            if element.choice:
                choices.setdefault(element.choice, []).append(name)
        required = sorted({e.choice or n for n, e in elements.items() if e.min >= 1})
        return TypeRules(elements, tuple(required), {k: tuple(v) for k, v in choices.items()})

    def compiled_invariants(self) -> Invariants:
        choices = frozenset(e.choice for rules in self.types.values()
                            for e in rules.elements.values() if e.choice)
        return Invariants(self.invariants, choices)

    def rules(self, type_code: str) -> TypeRules | None:
        return self.types.get(type_code.removeprefix("#"))


@cache
def core_invariants() -> Invariants:
    """The R4 invariants of the shipped table, compiled once per process."""
    return r4_table().compiled_invariants()


@cache
def r4_table() -> StructureTable:
    """The shipped R4 table, loaded once per process."""
    raw = package_files.files("fhir_server.validation").joinpath("r4_structure.json")
    return StructureTable(orjson.loads(raw.read_bytes()))


class StructureValidator:
    """Validates a parsed resource against the R4 structure; returns issues, never raises."""

    def __init__(self, table: StructureTable | None = None,
                 terminology: CoreTerminology | None = None) -> None:
        self.table = table or r4_table()
        self.terminology = terminology or core_terminology()
        self.invariants = core_invariants() if table is None else table.compiled_invariants()

    def validate(self, resource: Any, expected_type: str | None = None) -> list[Issue]:
        issues: list[Issue] = []
        if not isinstance(resource, dict):
            return [Issue("structure", "A resource must be a JSON object", None)]
        self._resource(resource, expected_type, resource.get("resourceType", "Resource"), issues,
                       resource)
        return issues

    def _resource(self, obj: Resource, expected: str | None, path: str,
                  issues: list[Issue], root: Resource) -> None:
        rtype = obj.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.table.resources:
            issues.append(Issue("structure", f"Unknown resourceType {rtype!r}", path))
            return
        if expected and rtype != expected:
            issues.append(Issue("invalid", f"Expected {expected} but found {rtype}", path))
            return
        rid = obj.get("id")
        if rid is not None and not (isinstance(rid, str) and ID.fullmatch(rid)):
            issues.append(Issue("value", f"Invalid id {_shown(rid)}", f"{path}.id"))
        self._object(obj, rtype, path, issues, (obj, root))
        if rtype == "Bundle":
            issues += bundle_rules(obj, path)

    def _object(self, obj: Resource, type_code: str, path: str, issues: list[Issue],
                scope: Scope) -> None:
        rules = self.table.rules(type_code)
        if rules is None:
            issues.append(Issue("structure", f"No definition for type {type_code}", path))
            return
        if not obj:
            issues.append(Issue("invalid", "An element must have a value or children", path))
            return
        if path.count(".") > MAX_DEPTH:
            issues.append(Issue("too-costly", f"Elements are nested more than {MAX_DEPTH} deep",
                                path[:200]))
            return
        elements = rules.elements
        bound = self.terminology.of_type(type_code)
        for key, value in obj.items():
            element = elements.get(key)
            if element is not None:
                self._property(key, value, element, obj.get("_" + key), path, issues, scope)
                if key in bound:
                    self._bound(bound[key], key, value, element.type, path, issues)
            elif key == "resourceType" and type_code in self.table.resources:
                continue
            elif key.startswith("_") and key[1:] in elements:
                self._companion(key, value, elements[key[1:]], obj.get(key[1:]), path, issues,
                                scope)
            else:
                issues.append(Issue("structure", f"Unknown element '{key}'", f"{path}.{key}"))
        for name in rules.required:
            names = rules.choices.get(name, (name,))
            if not any(n in obj or "_" + n in obj for n in names):
                issues.append(Issue("required", f"Missing required element '{name}'",
                                    f"{path}.{name}"))
        for base, names in rules.choices.items():
            present = [n for n in names if n in obj or "_" + n in obj]
            if len(present) > 1:
                issues.append(Issue("structure", f"Only one of {', '.join(present)} is allowed "
                                    f"for {base}[x]", f"{path}.{present[1]}"))
        self.invariants.check(obj, type_code, path, scope[0], scope[1], issues)
        if type_code == "Extension":
            self._extension(obj, path, issues)
        elif type_code == "Coding":
            self.terminology.check_coding(obj, path, issues)
        elif type_code == "Reference":
            self._reference(obj.get("reference"), path, issues)

    def _property(self, key: str, value: Any, element: Element, companion: Any, path: str,
                  issues: list[Issue], scope: Scope) -> None:
        here = f"{path}.{key}"
        if element.max == 1 or element.max == 0:
            if isinstance(value, list):
                issues.append(Issue("structure", f"'{key}' must not be an array", here))
                return
            self._value(value, element.type, here, companion is not None, issues, scope)
            return
        if not isinstance(value, list):
            issues.append(Issue("structure", f"'{key}' must be an array", here))
            return
        if not value:
            issues.append(Issue("invalid", f"'{key}' must not be an empty array", here))
            return
        if 0 < element.max < len(value):
            issues.append(Issue("structure", f"'{key}' allows at most {element.max}", here))
        extras = companion if isinstance(companion, list) else []
        for index, item in enumerate(value):
            has_extra = index < len(extras) and extras[index] is not None
            self._value(item, element.type, f"{here}[{index}]", has_extra, issues, scope)

    def _bound(self, binding: Binding, key: str, value: Any, type_code: str, path: str,
               issues: list[Issue]) -> None:
        here = f"{path}.{key}"
        if not isinstance(value, list):
            self.terminology.check_bound(value, type_code, binding, here, issues)
            return
        for index, item in enumerate(value):
            self.terminology.check_bound(item, type_code, binding, f"{here}[{index}]", issues)

    def _value(self, value: Any, type_code: str, path: str, has_companion: bool,
               issues: list[Issue], scope: Scope) -> None:
        primitive = self.table.primitives.get(type_code)
        if primitive is not None:
            if value is None and has_companion:
                return
            self._primitive(value, type_code, primitive, path, issues)
        elif not isinstance(value, dict):
            issues.append(Issue("structure", f"Expected a JSON object ({type_code})", path))
        elif type_code == "Resource":
            self._resource(value, None, path, issues, scope[1])
        else:
            self._object(value, type_code, path, issues, scope)

    def _primitive(self, value: Any, code: str, primitive: Primitive, path: str,
                   issues: list[Issue]) -> None:
        kind = primitive.json
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            issues.append(Issue("value", f"Expected a JSON {kind} for {code}, "
                                f"got {type(value).__name__}", path))
            return
        if kind == "integer":
            low, high = INT_RANGES[code]
            if not low <= value <= high:
                issues.append(Issue("value", f"{value} is out of range for {code}", path))
        elif kind == "string":
            if len(value) > MAX_STRING and code not in ("base64Binary", "xhtml"):
                issues.append(Issue("value", f"A {code} may not exceed 1 MB "
                                    f"({len(value):,} characters)", path))
            elif code == "xhtml":
                issues += check_narrative(value, path)
            elif code == "base64Binary":
                compact = WHITESPACE.sub("", value)
                if len(compact) % 4 or not BASE64.fullmatch(compact):
                    issues.append(Issue("value", "Invalid base64Binary value", path))
            elif primitive.regex is not None and not primitive.regex.fullmatch(value):
                issues.append(Issue("value", f"Invalid {code} value {_shown(value)}"
                                    f"{_format_hint(code, value)}", path))

    def _companion(self, key: str, value: Any, element: Element, base: Any, path: str,
                   issues: list[Issue], scope: Scope) -> None:
        here = f"{path}.{key}"
        if element.type not in self.table.primitives:
            issues.append(Issue("structure", f"'{key}' is only allowed for primitives", here))
            return
        items = value if isinstance(value, list) else [value]
        if base is not None and (isinstance(value, list) != isinstance(base, list) or (
            isinstance(base, list) and len(base) != len(value)
        )):
            issues.append(Issue("structure", f"'{key}' does not align with '{key[1:]}'", here))
            return
        for index, item in enumerate(items):
            if item is not None:
                where = f"{here}[{index}]" if isinstance(value, list) else here
                self._value(item, "Element", where, False, issues, scope)

    @staticmethod
    def _extension(obj: Resource, path: str, issues: list[Issue]) -> None:
        has_value = any(k.startswith(("value", "_value")) for k in obj)
        if has_value == ("extension" in obj):
            issues.append(Issue("invariant", "ext-1: an extension must have either "
                                "extensions or value[x], not both", path))

    def _reference(self, reference: Any, path: str, issues: list[Issue]) -> None:
        if not isinstance(reference, str) or "/" not in reference or ":" in reference:
            return
        match = REFERENCE.fullmatch(reference)
        if match and match["type"] in self.table.resources and ID.fullmatch(match["id"]):
            return
        issues.append(Issue("value", f"Invalid reference {reference!r}", f"{path}.reference"))


def _shown(value: Any, most: int = 80) -> str:
    """A value quoted in a message, cut short: messages must stay readable."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most]}… ({len(text):,} characters)"
