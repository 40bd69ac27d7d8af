"""Alliance resource profiles enforced on resources that claim them (``meta.profile``).

Compiled from each profile's snapshot: cardinality of top-level elements (choice types
included), required and extensible bindings checked against the alliance ValueSets held in
memory (``terminology/``), and slices: identifier slices matched by pattern, extension
slices by url, each with its own cardinality. A profile the server does not know is a
warning. The alliance's own FHIRPath invariants (``alliance-*``) are evaluated with
fhirpathpy; deeper elements come with the next steps of the profiles work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fhirpathpy
import orjson
from fhirpathpy.models import models

from fhir_server.outcome import Issue
from fhir_server.types import Resource


@dataclass(frozen=True, slots=True)
class ElementRule:
    name: str  # JSON name; a choice base ("effective") for value[x] elements
    choice: bool
    min: int
    max: int  # -1: unbounded
    binding: tuple[str, str] | None  # (strength, ValueSet url)


@dataclass(frozen=True, slots=True)
class SliceRule:
    element: str
    name: str
    min: int
    max: int
    pattern: Resource | None  # identifier slices
    url: str | None  # extension slices


@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    human: str
    evaluate: Callable[..., list[Any]]  # a compiled FHIRPath expression


@dataclass(frozen=True, slots=True)
class Profile:
    url: str
    type: str
    elements: tuple[ElementRule, ...]
    slices: tuple[SliceRule, ...]
    invariants: tuple[Invariant, ...] = ()


def _max(value: str) -> int:
    return -1 if value == "*" else int(value)


def compile_profile(definition: Resource) -> Profile:
    rtype = definition["type"]
    elements, slices = [], []
    for element in definition["snapshot"]["element"]:
        head, _, slice_name = element["id"].partition(":")
        if head.count(".") != 1 or element["id"].count(".") != 1:
            continue
        name = head.split(".")[1]
        if slice_name:
            profile = next((p for t in element.get("type", []) for p in t.get("profile", [])),
                           None)
            slices.append(SliceRule(name, slice_name, element.get("min", 0),
                                    _max(element.get("max", "*")),
                                    element.get("patternIdentifier"), profile))
            continue
        binding = element.get("binding") or {}
        elements.append(ElementRule(
            name.removesuffix("[x]"), name.endswith("[x]"), element.get("min", 0),
            _max(element.get("max", "*")),
            (binding["strength"], binding["valueSet"])
            if binding.get("strength") in ("required", "extensible") and binding.get(
                "valueSet", "").startswith("http://alliance-fhir.org/") else None))
    root = definition["snapshot"]["element"][0]
    invariants = tuple(
        Invariant(c["key"], c["human"], fhirpathpy.compile(c["expression"], models["r4"]))
        for c in root.get("constraint", []) if c["key"].startswith("alliance-"))
    return Profile(definition["url"], rtype, tuple(elements), tuple(slices), invariants)


def _values(resource: Resource, rule: ElementRule) -> list[Any]:
    if rule.choice:
        keys = [k for k in resource if k.startswith(rule.name) and k[len(rule.name):][:1]
                .isupper()]
    else:
        keys = [rule.name] if rule.name in resource else []
    values: list[Any] = []
    for key in keys:
        value = resource[key]
        values += value if isinstance(value, list) else [value]
    return values


def _codes(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("", value)]
    if isinstance(value, dict):
        codings = value.get("coding") if "coding" in value else [value]
        return [(c.get("system", ""), c.get("code", "")) for c in codings or []
                if isinstance(c, dict) and c.get("code")]
    return []


def _contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern matching: every element of the pattern is in the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_contains(value.get(k), v)
                                               for k, v in pattern.items())
    return bool(value == pattern)


class ProfileValidator:
    """Validates resources against the alliance profiles they declare."""

    def __init__(self, definitions: Iterable[Resource],
                 value_sets: dict[str, set[tuple[str, str]]],
                 required_for: Iterable[str] = ()) -> None:
        self.profiles = {d["url"]: compile_profile(d) for d in definitions
                         if d.get("kind") == "resource" and d.get("derivation") == "constraint"}
        self.value_sets = value_sets
        profiled = {p.type for p in self.profiles.values()}
        wanted = set(required_for)
        self.required_for = frozenset(profiled if "*" in wanted else wanted & profiled)

    def validate(self, resource: Resource, extra: Iterable[str] = ()) -> list[Issue]:
        """Issues against the profiles the resource claims (and ``extra`` ones)."""
        issues: list[Issue] = []
        claimed = [*((resource.get("meta") or {}).get("profile") or []), *extra]
        rtype = resource.get("resourceType", "")
        if rtype in self.required_for and not any(
                self.profiles.get(url, None) is not None for url in claimed):
            names = sorted(u.rsplit("/", 1)[-1] for u, p in self.profiles.items()
                           if p.type == rtype)
            issues.append(Issue("required", f"This server requires {rtype} resources to "
                                f"claim an alliance profile ({', '.join(names)}) in "
                                "meta.profile / 须声明医联体规范", f"{rtype}.meta.profile"))
        for url in claimed:
            profile = self.profiles.get(url)
            if profile is None:
                if url.startswith("http://alliance-fhir.org/"):
                    issues.append(Issue("not-supported", f"The profile {url} is not known "
                                        "here; not checked / 未知的规范", "meta.profile",
                                        "warning"))
                continue
            issues += self._check(resource, profile)
        return issues

    def _check(self, resource: Resource, profile: Profile) -> list[Issue]:
        issues: list[Issue] = [Issue("invariant", f"{rule.key}: {rule.human}", profile.type)
                               for rule in profile.invariants
                               if rule.evaluate(resource) == [False]]
        rtype = profile.type
        for rule in profile.elements:
            values = _values(resource, rule)
            where = f"{rtype}.{rule.name}"
            if len(values) < rule.min:
                issues.append(Issue("required", f"{profile.url.rsplit('/', 1)[-1]} needs "
                                    f"{where} (min {rule.min}) / 缺少必填项", where))
            if 0 <= rule.max < len(values):
                issues.append(Issue("structure", f"{where} allows at most {rule.max} here / "
                                    "超出最大次数", where))
            if rule.binding:
                issues += self._binding(rule, values, where)
        for piece in profile.slices:
            items = resource.get(piece.element) or []
            matching = [v for v in items if isinstance(v, dict) and (
                _contains(v, piece.pattern) if piece.pattern is not None
                else v.get("url") == piece.url)]
            where = f"{rtype}.{piece.element}:{piece.name}"
            if len(matching) < piece.min:
                issues.append(Issue("required", f"{where} is required (min {piece.min}) / "
                                    "缺少必需切片", where))
            if 0 <= piece.max < len(matching):
                issues.append(Issue("structure", f"{where} allows at most {piece.max} / "
                                    "切片超出最大次数", where))
        return issues

    def _binding(self, rule: ElementRule, values: list[Any], where: str) -> list[Issue]:
        strength, url = rule.binding  # type: ignore[misc]
        allowed = self.value_sets.get(url)
        if allowed is None:
            return []
        issues = []
        for value in values:
            codes = _codes(value)
            if codes and not any(c in allowed or ("", c[1]) in allowed for c in codes):
                severity = "error" if strength == "required" else "warning"
                issues.append(Issue("code-invalid", f"{where}: {codes[0][1]} is not in {url} "
                                    f"({strength} binding) / 代码不在值集中", where, severity))
        return issues


def load_value_sets(folder: Path) -> dict[str, set[tuple[str, str]]]:
    """ValueSet url → codes, for the ValueSets of a folder that include whole CodeSystems
    or list their concepts (what ``terminology/`` holds)."""
    resources = [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
    systems: dict[str, list[str]] = {}

    def codes(concepts: list[Resource]) -> list[str]:
        return [c["code"] for c in concepts] + [x for c in concepts
                                                for x in codes(c.get("concept", []))]

    for resource in resources:
        if resource.get("resourceType") == "CodeSystem":
            systems[resource["url"]] = codes(resource.get("concept", []))
    value_sets: dict[str, set[tuple[str, str]]] = {}
    for resource in resources:
        if resource.get("resourceType") != "ValueSet":
            continue
        found: set[tuple[str, str]] = set()
        for include in (resource.get("compose") or {}).get("include", []):
            system = include.get("system", "")
            listed = [c["code"] for c in include.get("concept", [])]
            found |= {(system, c) for c in (listed or systems.get(system, []))}
        value_sets[resource["url"]] = found
    return value_sets
