"""Finding and rewriting the references inside a resource (https://hl7.org/fhir/R4/references.html)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fhir_server.storage.port import Reference
from fhir_server.types import Resource

RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


def walk_references(value: Any, path: str) -> Iterator[tuple[Resource, str]]:
    """Every object holding a string ``reference``, with its FHIRPath-like location."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value, path
        for key, item in value.items():
            if isinstance(item, dict | list) and key != "contained":
                yield from walk_references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_references(item, f"{path}[{index}]")


def local_references(resource: Resource,
                     is_local_type: Callable[[str], bool]) -> tuple[Reference, ...]:
    """Relative ``Type/id`` references to types this server holds (contained ones too)."""
    found: dict[tuple[str, str], Reference] = {}
    roots = [(resource, resource["resourceType"])]
    roots += [(c, f"{resource['resourceType']}.contained[{i}]")
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
