"""What every search parameter type module provides, and the context they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING, Protocol

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Conjunction, Node
from fhir_server.search.values import prefixed

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

Row = tuple[str, str, tuple[object, ...]]  # (table, param key, values)
CodeSet = Callable[[str, str, str], list[tuple[str, str]]]  # (modifier, system, code/url)


@dataclass(frozen=True, slots=True)
class Context:
    """What extraction and compilation need beyond the parameter: time zone, terminology."""

    zone: timezone
    base_url: str = ""
    code_set: CodeSet | None = field(default=None)


class ParamType(Protocol):
    name: str
    modifiers: tuple[str, ...]

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterable[Row]: ...

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node: ...


def refuse_modifier(param: SearchParam, modifier: str | None,
                    allowed: tuple[str, ...]) -> None:
    if modifier is not None and modifier not in allowed:
        raise FhirError(f"The modifier :{modifier} is not supported for {param.type} parameter "
                        f"'{param.code}'" + (f"; use one of :{', :'.join(allowed)}"
                                             if allowed else ""), f"{param.code}:{modifier}")


def prefixed_any_of(values: list[str], conjunctions: Callable[[str, str],
                    tuple[Conjunction, ...]]) -> tuple[Conjunction, ...]:
    """The OR of comma-separated prefixed values (``ge2020,lt1990``), each through
    ``conjunctions(prefix, value)``."""
    any_of: list[Conjunction] = []
    for raw in values:
        any_of += conjunctions(*prefixed(raw))
    return tuple(any_of)


def strings_in(value: object, depth: int = 0) -> list[str]:
    """Every string leaf of an element (for string/token parameters on complex types)."""
    if isinstance(value, str):
        return [value]
    if depth > 4:
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("extension", "id", "system")
                for s in strings_in(v, depth + 1)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v, depth + 1)]
    return []
