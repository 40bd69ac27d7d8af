"""uri parameters (https://hl7.org/fhir/R4/search.html#uri): exact, ``:below``, ``:above``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, refuse_modifier
from fhir_server.search.values import unescape

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam


class UriType:
    name = "uri"
    modifiers: tuple[str, ...] = ("below", "above")

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        found = [value for value, _ in values if isinstance(value, str)]
        for value in found:
            yield "uri", param.key, (value,)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        any_of: list[Conjunction] = []
        for raw in values:
            value = unescape(raw)
            if modifier == "below":
                any_of.append((Cmp("uri", "prefix", value),))
            elif modifier == "above":
                any_of.append((Cmp("uri", "in", _ancestors(value)),))
            else:
                any_of.append((Cmp("uri", "=", value),))
        return IndexMatch("uri", param.key, tuple(any_of))


def _ancestors(url: str) -> tuple[str, ...]:
    """``http://a/b/c`` → itself and every shorter path: ``http://a/b``, ``http://a``."""
    scheme, _, rest = url.partition("://")
    parts = rest.split("/")
    return tuple(f"{scheme}://{'/'.join(parts[:n])}" if scheme and rest else "/".join(parts[:n])
                 for n in range(len(parts), 0, -1))


TYPE = UriType()
