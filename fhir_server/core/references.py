"""Finding and rewriting the references inside a resource (https://hl7.org/fhir/R4/references.html)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhir_server.storage.port import Reference
from fhir_server.types import Resource

RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


def walk_references(value: Any, path: str) -> list[tuple[Resource, str]]:
    """Every object holding a string ``reference``, with its FHIRPath-like location, in
    document order (an explicit stack: nested generators cost more than the walk)."""
    found: list[tuple[Resource, str]] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if type(item) is dict:
            if type(item.get("reference")) is str:
                found.append((item, where))
            children = [(child, f"{where}.{key}") for key, child in item.items()
                        if type(child) in (dict, list) and key != "contained"]
            stack.extend(reversed(children))
        elif type(item) is list:
            stack.extend(reversed([(child, f"{where}[{index}]")
                                   for index, child in enumerate(item)
                                   if type(child) in (dict, list)]))
    return found


def local_references(resource: Resource, is_local_type: Callable[[str], bool],
                     path: str = "") -> tuple[Reference, ...]:
    """Relative ``Type/id`` references to types this server holds (contained ones too),
    each named by its place below ``path`` (default: the resource type)."""
    found: dict[tuple[str, str], Reference] = {}
    path = path or resource["resourceType"]
    roots = [(resource, path)]
    roots += [(c, f"{path}.contained[{i}]")
              for i, c in enumerate(resource.get("contained") or []) if isinstance(c, dict)]
    for root, path in roots:
        for holder, where in walk_references(root, path):
            match = RELATIVE.fullmatch(holder["reference"])
            if match and is_local_type(match[1]):
                found.setdefault((match[1], match[2]),
                                 Reference(match[1], match[2], where + ".reference"))
    return tuple(found.values())


def rewrite_references(resource: Resource, mapping: dict[str, str]) -> None:
    """Replace references (e.g. ``urn:uuid:…``) by their new targets, in place."""
    roots = [resource, *[c for c in resource.get("contained") or [] if isinstance(c, dict)]]
    for root in roots:
        for holder, _ in walk_references(root, ""):
            target = mapping.get(holder["reference"])
            if target is not None:
                holder["reference"] = target
