"""Alliance resource profiles enforced on resources that claim them (``meta.profile``).

Compiled from each profile's snapshot: cardinality of every top-level element (choice
types included) and of each deeper element the differential constrains (counted per parent
instance); fixed and pattern values; reference target types the profile narrows
(``targetProfile``); required and extensible bindings checked against the alliance ValueSets
held in memory (``terminology/``); and slices: identifier slices matched by pattern,
extension slices by url, each with its own cardinality. A profile the server does not know
is a warning. The alliance's own FHIRPath invariants (``alliance-*``) are evaluated with
fhirpathpy. Not compiled: constraints on elements below a choice type or inside a slice
(the alliance profiles have none; a slice's extension is checked by its own definition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from fhir_server import jsonbytes
from fhir_server.outcome import Issue
from fhir_server.types import Resource
from fhir_server.validation.hints import CodingHints


@dataclass(frozen=True, slots=True)
class ElementRule:
    parents: tuple[str, ...]  # JSON names from the resource down to the element's parent
    name: str  # JSON name; a choice base ("effective") for value[x] elements
    choice: bool
    min: int  # per parent instance
    max: int  # -1: unbounded
    binding: tuple[str, str] | None  # (strength, ValueSet url)
    fixed: Any = None  # fixed[x]: the value must equal it
    pattern: Any = None  # pattern[x]: the value must contain it
    targets: frozenset[str] = frozenset()  # allowed reference target types (empty: any)


@dataclass(frozen=True, slots=True)
class SliceRule:
    element: str
    name: str
    min: int  # per parent instance
    max: int
    pattern: Resource | None  # identifier and coding slices
    url: str | None  # extension slices
    parents: tuple[str, ...] = ()  # JSON names down to the sliced element's parent


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


def _prefixed(element: Resource, prefix: str) -> Any:
    return next((v for k, v in element.items() if k.startswith(prefix)), None)


def _element_rule(element: Resource) -> ElementRule:
    *parents, name = element["id"].split(".")[1:]
    binding = element.get("binding") or {}
    targets = frozenset(url.rsplit("/", 1)[-1] for t in element.get("type", [])
                        if t.get("code") == "Reference" for url in t.get("targetProfile", []))
    return ElementRule(
        tuple(parents), name.removesuffix("[x]"), name.endswith("[x]"), element.get("min", 0),
        _max(element.get("max", "*")),
        (binding["strength"], binding["valueSet"])
        if binding.get("strength") in ("required", "extensible") and binding.get(
            "valueSet", "").startswith("http://alliance-fhir.org/") else None,
        _prefixed(element, "fixed"), _prefixed(element, "pattern"),
        frozenset() if "Resource" in targets else targets)


def compile_profile(definition: Resource) -> Profile:
    rtype = definition["type"]
    constrained = {e["id"] for e in definition.get("differential", {}).get("element", [])}
    elements, slices = [], []
    for element in definition["snapshot"]["element"]:
        head, _, slice_name = element["id"].partition(":")
        if "[x]" in head.rpartition(".")[0] or "." in slice_name:
            continue  # below a choice type, or inside a slice
        if slice_name:
            *parents, name = head.split(".")[1:]
            profile = next((p for t in element.get("type", []) for p in t.get("profile", [])),
                           None)
            slices.append(SliceRule(name, slice_name, element.get("min", 0),
                                    _max(element.get("max", "*")),
                                    _prefixed(element, "pattern"), profile, tuple(parents)))
            continue
        if head.count(".") > 1 and element["id"] in constrained:
            elements.append(_element_rule(element))
        if head.count(".") != 1:
            continue
        name = head.split(".")[1]
        rule = _element_rule(element)
        elements.append(rule if element["id"] in constrained
                        else ElementRule((), rule.name, rule.choice, rule.min, rule.max,
                                         rule.binding))
    root = definition["snapshot"]["element"][0]
    invariants = tuple(
        Invariant(c["key"], c["human"], fhirpathpy.compile(c["expression"], models["r4"]))
        for c in root.get("constraint", []) if c["key"].startswith("alliance-"))
    return Profile(definition["url"], rtype, tuple(elements), tuple(slices), invariants)


def _parents(resource: Resource, path: tuple[str, ...]) -> list[Resource]:
    """The objects at ``path`` below the resource (arrays flattened)."""
    nodes = [resource]
    for name in path:
        found: list[Resource] = []
        for node in nodes:
            value = node.get(name)
            found += [v for v in (value if isinstance(value, list) else [value])
                      if isinstance(v, dict)]
        nodes = found
    return nodes


def _reference_type(value: Any) -> str | None:
    """The type a literal reference names (``Type/id``, ``…/Type/id[/_history/n]``)."""
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/_history/")[0].split("/")
    return parts[-2] if len(parts) >= 2 else None


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
                 required_for: Iterable[str] = (), hints: CodingHints | None = None,
                 systems: dict[str, frozenset[str]] | None = None) -> None:
        self.profiles = {d["url"]: compile_profile(d) for d in definitions
                         if d.get("kind") == "resource" and d.get("derivation") == "constraint"}
        self.value_sets = value_sets
        self.hints = hints or CodingHints(())
        self.systems = systems or {}
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
            where = ".".join((rtype, *rule.parents, rule.name))
            for parent in _parents(resource, rule.parents):
                issues += self._element(profile, rule, _values(parent, rule), where)
        for piece in profile.slices:
            where = ".".join((rtype, *piece.parents, piece.element)) + f":{piece.name}"
            for parent in _parents(resource, piece.parents):
                items = parent.get(piece.element) or []
                matching = [v for v in items if isinstance(v, dict) and (
                    _contains(v, piece.pattern) if piece.pattern is not None
                    else v.get("url") == piece.url)]
                if len(matching) < piece.min:
                    system = (piece.pattern or {}).get("system") \
                        if isinstance(piece.pattern, dict) else None
                    fix = f": {self.hints.hint(items, system)}" if system else ""
                    issues.append(Issue("required", f"{where} is required (min {piece.min})"
                                        f"{fix} / 缺少必需切片", where))
                if 0 <= piece.max < len(matching):
                    issues.append(Issue("structure", f"{where} allows at most {piece.max} / "
                                        "切片超出最大次数", where))
        return issues

    def _element(self, profile: Profile, rule: ElementRule, values: list[Any],
                 where: str) -> list[Issue]:
        issues = []
        if len(values) < rule.min:
            issues.append(Issue("required", f"{profile.url.rsplit('/', 1)[-1]} needs "
                                f"{where} (min {rule.min}) / 缺少必填项", where))
        if 0 <= rule.max < len(values):
            issues.append(Issue("structure", f"{where} allows at most {rule.max} here / "
                                "超出最大次数", where))
        for value in values:
            if rule.fixed is not None and value != rule.fixed:
                fixed = jsonbytes.dumps(rule.fixed).decode()
                issues.append(Issue("value", f"{where} must be {fixed} / 须为固定值", where))
            if rule.pattern is not None and not _contains(value, rule.pattern):
                issues.append(Issue("value", f"{where} must match "
                                    f"{jsonbytes.dumps(rule.pattern).decode()} / 须符合模式值",
                                    where))
            target = _reference_type(value) if rule.targets else None
            if target is not None and target not in rule.targets:
                issues.append(Issue("structure", f"{where} must reference "
                                    f"{' or '.join(sorted(rule.targets))}, not {target} / "
                                    "引用的资源类型不符", where))
        if rule.binding:
            issues += self._binding(rule, values, where)
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
                unknown = [(s, c) for s, c in codes if c not in self.systems.get(s, (c,))]
                if unknown:  # a code its (complete) CodeSystem does not define: never valid
                    system, code = unknown[0]
                    issues.append(Issue("code-invalid", f"{where}: {code} is not a code of "
                                        f"{system} / 代码系统中无此代码", where))
                    continue
                severity = "error" if strength == "required" else "warning"
                issues.append(Issue("code-invalid", f"{where}: {codes[0][1]} is not in {url} "
                                    f"({strength} binding) / 代码不在值集中", where, severity))
        return issues


def _concept_codes(concepts: list[Resource]) -> list[str]:
    """Every code of a CodeSystem's concepts, nested ones too."""
    return [c["code"] for c in concepts] + [x for c in concepts
                                            for x in _concept_codes(c.get("concept", []))]


def complete_systems(resources: Iterable[Resource]) -> dict[str, frozenset[str]]:
    """CodeSystem url → its codes, for the CodeSystems that define all their codes
    (``content: complete``): a code outside them is wrong whatever the binding."""
    return {r["url"]: frozenset(_concept_codes(r.get("concept", []))) for r in resources
            if r.get("resourceType") == "CodeSystem" and r.get("content") == "complete"}


def value_sets(resources: list[Resource]) -> dict[str, set[tuple[str, str]]]:
    """ValueSet url → codes, for the ValueSets that include whole CodeSystems or list their
    concepts (what ``terminology/`` holds)."""
    systems = {r["url"]: _concept_codes(r.get("concept", [])) for r in resources
               if r.get("resourceType") == "CodeSystem"}
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
