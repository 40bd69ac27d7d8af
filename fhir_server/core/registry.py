"""The resource types this server holds: every R4 resource type of the official definitions
(the structure table's list), but for those that are never stored."""

from __future__ import annotations

from functools import cache
from importlib import resources as package_files

import orjson

NOT_STORED = ("Parameters",)  # an operation's input or output, never a stored resource


@cache
def r4_resource_types() -> tuple[str, ...]:
    """The 145 R4 resource types a server may store, from ``r4_structure.json``."""
    raw = package_files.files("fhir_server.validation").joinpath("r4_structure.json")
    names: list[str] = orjson.loads(raw.read_bytes())["resources"]
    return tuple(sorted(n for n in names if n not in NOT_STORED))


class ResourceRegistry:
    """Which resource types are served; ``is_supported`` is on every request's path."""

    def __init__(self, types: tuple[str, ...] | None = None) -> None:
        types = r4_resource_types() if types is None else types
        self.types = frozenset(types)
        self.ordered = tuple(sorted(types))

    def is_supported(self, resource_type: str) -> bool:
        return resource_type in self.types
