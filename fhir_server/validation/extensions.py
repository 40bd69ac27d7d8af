"""Extensions checked against their definitions: the alliance's (``profiles/``) and the R4
core's (compiled into ``r4_structure.json``).

Each extension must stand where its definition's context allows: a type (``Address``), an
element path (``Patient.contact``, ``Address.line``, on a primitive's ``_line``), any
element (``Element``) or any resource. A simple extension carries a value of an allowed
type; a complex one its required parts with allowed value types and no value of its own.
An extension whose url names no known definition is an error, as the HL7 validator reports
it, unless the server allows any extension (``FHIR_ALLOW_ANY_EXTENSION``). The walk
follows the R4 structure table, so every object's type and path are known. Conformance
resources (StructureDefinition, ValueSet, …) are not walked: the spec's tooling extensions
stand in them where its tools put them, often outside their declared contexts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_server import jsonbytes
from fhir_server.outcome import Issue
from fhir_server.types import Resource
from fhir_server.validation.structure import r4_table

ANY_RESOURCE = frozenset({"Resource", "DomainResource"})
ENTRY = "#Bundle.entry"  # its resource is checked as a resource of its own (check.py)
# Conformance resources carry the spec's tooling extensions wherever its tools put them
# (the R4 definitions themselves break those extensions' contexts); not checked inside.
CONFORMANCE = frozenset({
    "StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "OperationDefinition",
    "SearchParameter", "CapabilityStatement", "ImplementationGuide", "NamingSystem",
    "CompartmentDefinition", "StructureMap", "GraphDefinition", "MessageDefinition",
    "TerminologyCapabilities"})


@dataclass(frozen=True, slots=True)
class ValueRule:
    types: frozenset[str]  # allowed value[x] types; empty: no value allowed
    required: bool


@dataclass(frozen=True, slots=True)
class ExtensionRule:
    url: str
    contexts: frozenset[str]  # types or element paths; empty: anywhere
    value: ValueRule
    parts: dict[str, ValueRule]  # complex extension: sub-extension url -> its value
    required_parts: frozenset[str]


def _value_rule(elements: dict[str, Resource], element_id: str) -> ValueRule:
    element = elements.get(element_id, {})
    if element.get("max") == "0":
        return ValueRule(frozenset(), False)
    return ValueRule(frozenset(t["code"] for t in element.get("type", [])),
                     element.get("min", 0) >= 1)


def compile_rule(definition: Resource) -> ExtensionRule:
    elements = {e["id"]: e for e in definition["snapshot"]["element"]}
    parts, required = {}, set()
    for element_id, element in elements.items():
        if element_id.startswith("Extension.extension:") and element_id.count(".") == 1:
            name = element["sliceName"]
            parts[name] = _value_rule(elements, f"{element_id}.value[x]")
            if element.get("min", 0) >= 1:
                required.add(name)
    contexts = frozenset(c["expression"] for c in definition.get("context", []))
    return ExtensionRule(definition["url"], contexts,
                         _value_rule(elements, "Extension.value[x]"), parts,
                         frozenset(required))


def rule_to_json(rule: ExtensionRule) -> list[Any]:
    """A compiled rule as the generated table keeps it."""
    return [sorted(rule.contexts), sorted(rule.value.types), rule.value.required,
            {name: [sorted(part.types), part.required] for name, part in rule.parts.items()},
            sorted(rule.required_parts)]


def rule_from_json(url: str, raw: list[Any]) -> ExtensionRule:
    contexts, types, required, parts, required_parts = raw
    return ExtensionRule(url, frozenset(contexts), ValueRule(frozenset(types), required),
                         {n: ValueRule(frozenset(t), r) for n, (t, r) in parts.items()},
                         frozenset(required_parts))


def _types(extension: Resource) -> list[str]:
    """The value type as written (``valueCoding`` → Coding, ``valueCode`` → code)."""
    for key in extension:
        if key.startswith("value") and len(key) > 5:
            name = key[5:]
            return [name, name[0].lower() + name[1:]]
    return []


@dataclass(frozen=True, slots=True)
class Place:
    """Where an object stands: the names an extension's context may give it."""

    names: frozenset[str]  # its type, its path from the resource, its path in its type
    path: str  # its path from the resource, without indices (for messages)
    resource: bool


class ExtensionValidator:
    """Checks every extension inside a resource against the known definitions."""

    def __init__(self, definitions: Iterable[Resource] = (), allow_any: bool = False) -> None:
        table = r4_table()
        self.rules = {url: rule_from_json(url, raw) for url, raw in table.extensions.items()}
        self.rules.update({d["url"]: compile_rule(d) for d in definitions
                           if d.get("type") == "Extension" and "snapshot" in d})
        self.allow_any = allow_any
        self.table = table

    def validate(self, resource: Resource) -> list[Issue]:
        if b'xtension"' not in jsonbytes.dumps(resource):
            return []  # serialising is a few µs; walking every element costs more
        issues: list[Issue] = []
        rtype = resource.get("resourceType", "")
        if rtype not in CONFORMANCE:
            self._walk(resource, rtype, Place(frozenset({rtype}), rtype, True), rtype, issues)
        return issues

    def _walk(self, obj: dict[str, Any], type_code: str, place: Place, path: str,
              issues: list[Issue]) -> None:
        rules = self.table.rules(type_code)
        for key, item in obj.items():
            if key in ("extension", "modifierExtension"):
                for index, extension in enumerate(item if isinstance(item, list) else []):
                    if isinstance(extension, dict):
                        self._check(extension, place, f"{path}.{key}[{index}]", issues)
                continue
            name = key[1:] if key.startswith("_") else key
            element = rules.elements.get(name) if rules else None
            if element is None:
                continue
            items = item if isinstance(item, list) else [item]
            for index, child in enumerate(items):
                if not isinstance(child, dict):
                    continue
                where = f"{path}.{key}[{index}]" if isinstance(item, list) else f"{path}.{key}"
                if element.type == "Resource":
                    rtype = child.get("resourceType", "")
                    if rtype not in CONFORMANCE and type_code != ENTRY:
                        self._walk(child, rtype, Place(frozenset({rtype}), rtype, True), where,
                                   issues)
                    continue
                rooted = f"{place.path}.{name}"
                in_type = f"{type_code.removeprefix('#')}.{name}"
                names = frozenset({element.type.removeprefix("#"), rooted, in_type})
                child_type = "Element" if key.startswith("_") else element.type
                self._walk(child, child_type, Place(names, rooted, False), where, issues)

    def _check(self, extension: Resource, place: Place, path: str,
               issues: list[Issue]) -> None:
        url = extension.get("url", "")
        rule = self.rules.get(url)
        if rule is None:
            if not self.allow_any and isinstance(url, str):
                issues.append(Issue("extension", f"The extension {url} could not be found so "
                                    "is not allowed here / 未知的扩展", path))
            return
        if not _fits(rule.contexts, place):
            issues.append(Issue("business-rule", f"The extension {rule.url} is not allowed on "
                                f"{place.path} (only on {', '.join(sorted(rule.contexts))}) / "
                                "扩展使用位置错误", path))
        issues += _check_value(rule.value, extension, rule.url, path)
        if rule.parts:
            present = {e.get("url") for e in extension.get("extension", [])}
            for name in sorted(rule.required_parts - present):
                issues.append(Issue("business-rule", f"The extension {rule.url} needs its "
                                    f"'{name}' part / 扩展缺少必需部分", f"{path}.extension"))
            for index, part in enumerate(extension.get("extension", [])):
                part_rule = rule.parts.get(part.get("url", ""))
                if part_rule is not None:
                    issues += _check_value(part_rule, part, f"{rule.url}#{part['url']}",
                                           f"{path}.extension[{index}]")


def _fits(contexts: frozenset[str], place: Place) -> bool:
    return not contexts or "Element" in contexts or bool(contexts & place.names) or (
        place.resource and bool(contexts & ANY_RESOURCE))


def _check_value(rule: ValueRule, extension: Resource, url: str, path: str) -> list[Issue]:
    written = _types(extension)
    if written and not rule.types:
        return [Issue("business-rule", f"The extension {url} takes no value / 该扩展不应有值",
                      path)]
    if not written:
        return [Issue("business-rule", f"The extension {url} needs a value / 扩展缺少值",
                      path)] if rule.required else []
    if not set(written) & rule.types:
        return [Issue("business-rule", f"The extension {url} takes a value of type "
                      f"{', '.join(sorted(rule.types))}, not {written[0]} / 扩展值类型错误",
                      path)]
    return []
