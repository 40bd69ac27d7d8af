"""Alliance extensions checked against their StructureDefinitions (``profiles/``).

For every extension whose url names a loaded definition: it must stand where its context
allows (the resource type or data type it is on), a simple extension must carry a value of
an allowed type, a complex one its required sub-extensions with allowed value types and no
value of its own. Rules are compiled once from each definition's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.outcome import Issue
from fhir_server.types import Resource


@dataclass(frozen=True, slots=True)
class ValueRule:
    types: frozenset[str]  # allowed value[x] types; empty: no value allowed
    required: bool


@dataclass(frozen=True, slots=True)
class ExtensionRule:
    url: str
    contexts: frozenset[str]  # resource or data type names; empty: anywhere
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
    contexts = frozenset(c["expression"].split(".")[0] for c in definition.get("context", []))
    return ExtensionRule(definition["url"], contexts,
                         _value_rule(elements, "Extension.value[x]"), parts,
                         frozenset(required))


def _types(extension: Resource) -> list[str]:
    """The value type as written (``valueCoding`` → Coding, ``valueCode`` → code)."""
    for key in extension:
        if key.startswith("value") and len(key) > 5:
            name = key[5:]
            return [name, name[0].lower() + name[1:]]
    return []


class ExtensionValidator:
    """Checks the alliance extensions inside a resource."""

    def __init__(self, definitions: Iterable[Resource] = ()) -> None:
        self.rules = {d["url"]: compile_rule(d) for d in definitions
                      if d.get("type") == "Extension" and "snapshot" in d}
        self._prefixes = {url.rsplit("/", 1)[0].encode() for url in self.rules}

    def validate(self, resource: Resource) -> list[Issue]:
        if not self.rules or not any(prefix in orjson.dumps(resource)
                                     for prefix in self._prefixes):
            return []  # serialising is a few µs; walking every element costs more
        return [issue for found in self._walk(resource, resource.get("resourceType", ""),
                                              resource.get("resourceType", ""))
                for issue in self._check(*found)]

    def _walk(self, value: Any, owner: str, path: str) -> Iterator[tuple[Resource, str, str]]:
        if isinstance(value, dict):
            if isinstance(value.get("resourceType"), str) and path.count(".") > 0:
                owner = value["resourceType"]
            for key, item in value.items():
                if key in ("extension", "modifierExtension") and isinstance(item, list):
                    for index, extension in enumerate(item):
                        if isinstance(extension, dict):
                            yield extension, owner, f"{path}.{key}[{index}]"
                elif isinstance(item, dict | list):
                    yield from self._walk(item, _owner(owner, key, item), f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from self._walk(item, owner, f"{path}[{index}]")

    def _check(self, extension: Resource, owner: str, path: str) -> list[Issue]:
        rule = self.rules.get(extension.get("url", ""))
        if rule is None:
            return []
        issues = []
        if rule.contexts and owner not in rule.contexts:
            issues.append(Issue("business-rule", f"The extension {rule.url} is not allowed on "
                                f"{owner} (only on {', '.join(sorted(rule.contexts))}) / "
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
        return issues


def _owner(owner: str, key: str, item: Any) -> str:
    """The data type an element holds, as far as extension contexts care (Address)."""
    if key == "address":
        return "Address"
    return owner


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
