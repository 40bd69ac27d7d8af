"""Search parameter expressions compiled to fast accessors, with a FHIRPath engine behind.

The R4 expressions of the served types use a small subset: paths of element names (choice
elements included), ``|``, ``ofType(T)``, ``where(resolve() is T)`` and
``where(field = 'literal')``, plus ``extension('url')`` in alliance parameters. Those
compile to steps walked with the R4 structure table, which also gives each value its FHIR
type. Anything else is evaluated by fhirpathpy, with types guessed from the JSON shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from fhir_server.types import Resource
from fhir_server.validation.structure import StructureTable, r4_table

Typed = tuple[Any, str]  # a value and its FHIR type code
QUANTITIES = frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity",
                        "MoneyQuantity"})
STEP = re.compile(
    r"(?P<oftype>ofType\((?P<type>[A-Za-z]+)\))"
    r"|(?P<resolve>where\(\s*resolve\(\)\s+is\s+(?P<target>[A-Za-z]+)\s*\))"
    r"|(?P<where>where\(\s*(?P<field>[A-Za-z]+)\s*=\s*'(?P<literal>[^']*)'\s*\))"
    r"|(?P<extension>extension\(\s*'(?P<url>[^']+)'\s*\))"
    r"|(?P<name>[A-Za-z][A-Za-z0-9]*)")


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # name | oftype | resolve | where | extension
    name: str = ""
    value: str = ""


def _split(text: str, separator: str) -> list[str]:
    """Split on a separator outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(separator, index):
            parts.append(text[start:index].strip())
            start = index + len(separator)
    parts.append(text[start:].strip())
    return parts


def _steps(path: str) -> list[Step] | None:
    steps = []
    for token in _split(path, "."):
        match = STEP.fullmatch(token)
        if not match:
            return None
        if match["oftype"]:
            steps.append(Step("oftype", match["type"]))
        elif match["resolve"]:
            steps.append(Step("resolve", match["target"]))
        elif match["where"]:
            steps.append(Step("where", match["field"], match["literal"]))
        elif match["extension"]:
            steps.append(Step("extension", value=match["url"]))
        else:
            steps.append(Step("name", match["name"]))
    return steps


class Accessor:
    """Evaluates one compiled expression to typed values."""

    def __init__(self, expression: str, root: str | None,
                 table: StructureTable | None = None) -> None:
        self.expression = expression
        self.root = root
        self.table = table or r4_table()
        self.paths: list[list[Step]] | None = []
        for part in _split(expression, "|"):
            steps = _steps(part)
            rooted = root is None or (steps and steps[0] == Step("name", root))
            if steps is None or not rooted:
                self.paths = None
                break
            self.paths.append(steps[1:] if root is not None else steps)
        self._engine: Callable[..., list[Any]] | None = None
        if self.paths is None:
            self._engine = fhirpathpy.compile(expression, models["r4"])
        self.deps = self._deps()

    def _deps(self) -> frozenset[str]:
        """The top-level JSON keys the expression reads (empty: it may read anything)."""
        if self.root is None:
            return frozenset()
        if self.paths is None:
            parts = _split(self.expression, "|")
            if any(not p.startswith(f"{self.root}.") for p in parts):
                return frozenset()
            names = re.findall(rf"\b{self.root}\.([A-Za-z]+)", self.expression)
            return frozenset(k for n in names for k, _ in _members(self.table, self.root, n))
        return self.keys_in(self.root) or frozenset()

    def keys_in(self, type_code: str) -> frozenset[str] | None:
        """The JSON keys of ``type_code`` the paths start with; None if some path is empty."""
        keys: set[str] = set()
        for steps in self.paths or ():
            if not steps or steps[0].kind != "name":
                return None
            members = _members(self.table, type_code, steps[0].name)
            if len(steps) > 1 and steps[1].kind == "oftype":
                members = tuple(m for m in members if _is_type(m[1], steps[1].name))
            keys.update(name for name, _ in members)
        return frozenset(keys) if self.paths is not None else None

    def evaluate(self, value: Any, type_code: str | None = None) -> list[Typed]:
        """Typed values the expression selects from ``value`` (a resource or an element)."""
        start = type_code or (value.get("resourceType") if isinstance(value, dict) else None)
        if self.paths is None:
            return [(v, _guess_type(v)) for v in self._engine(value)]  # type: ignore[misc]
        found: list[Typed] = []
        for steps in self.paths:
            current: list[Typed] = [(value, start or "")]
            for step in steps:
                current = self._apply(step, current)
                if not current:
                    break
            found += current
        return found

    def _apply(self, step: Step, values: list[Typed]) -> list[Typed]:
        if step.kind == "name":
            out: list[Typed] = []
            for value, type_code in values:
                if isinstance(value, dict):
                    out += self._children(value, type_code, step.name)
            return out
        if step.kind == "oftype":
            return [(v, t) for v, t in values if _is_type(t, step.name)]
        if step.kind == "resolve":
            prefix = step.name + "/"
            return [(v, t) for v, t in values if isinstance(v, dict)
                    and isinstance(v.get("reference"), str)
                    and (v["reference"].startswith(prefix) or f"/{prefix}" in v["reference"])]
        if step.kind == "where":
            return [(v, t) for v, t in values
                    if isinstance(v, dict) and v.get(step.name) == step.value]
        return [(e, "Extension") for v, _ in values if isinstance(v, dict)
                for e in v.get("extension", []) if e.get("url") == step.value]

    def _children(self, value: Resource, type_code: str, name: str) -> list[Typed]:
        out: list[Typed] = []
        for json_name, child_type in _members(self.table, type_code, name):
            child = value.get(json_name)
            if child is None:
                continue
            if isinstance(child, list):
                out += [(item, child_type) for item in child if item is not None]
            else:
                out.append((child, child_type))
        return out


def _is_type(type_code: str, wanted: str) -> bool:
    """FHIRPath type tests; ``DateTime`` (System type, as some R4 expressions write it)
    matches FHIR ``dateTime``, and ``Quantity`` its specialisations."""
    return (type_code.lower() == wanted.lower()
            or (wanted == "Quantity" and type_code in QUANTITIES))


@lru_cache(maxsize=8192)
def _members(table: StructureTable, type_code: str, name: str) -> tuple[tuple[str, str], ...]:
    """(JSON name, type) of element ``name`` of a type: one, or each choice variant."""
    rules = table.rules(type_code)
    if rules is None:
        return ()
    names = rules.choices.get(name, (name,))
    return tuple((n, rules.elements[n].type) for n in names if n in rules.elements)


def _guess_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "decimal"
    if isinstance(value, dict):
        for keys, type_code in ((("coding",), "CodeableConcept"), (("reference",), "Reference"),
                                (("start",), "Period"), (("end",), "Period"),
                                (("value", "unit"), "Quantity"), (("code", "system"), "Coding")):
            if all(k in value for k in keys):
                return type_code
        return "Element"
    return "string"


@cache
def compile_path(expression: str, root: str | None) -> Accessor:
    """The accessor of an expression, compiled once per process (accessors are immutable,
    and every registry of a process shares them)."""
    return Accessor(expression, root)
