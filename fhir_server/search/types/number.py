"""number parameters (https://hl7.org/fhir/R4/search.html#number).

Index: the value. Query: the value's implicit precision gives its range (``100`` is
[99.5, 100.5)); prefixes eq ne gt lt ge le sa eb ap (±10 %).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, prefixed_any_of, refuse_modifier
from fhir_server.search.values import number_range

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam


def conjunction(prefix: str, text: str, parameter: str,
                column: str = "value") -> tuple[Conjunction, ...]:
    value, low, high = number_range(text, parameter)
    if prefix == "eq":
        return ((Cmp(column, ">=", low), Cmp(column, "<", high)),)
    if prefix == "ne":
        return ((Cmp(column, "<", low),), (Cmp(column, ">=", high),))
    if prefix in ("gt", "sa"):
        return ((Cmp(column, ">", value),),)
    if prefix in ("lt", "eb"):
        return ((Cmp(column, "<", value),),)
    if prefix == "ge":
        return ((Cmp(column, ">=", value),),)
    if prefix == "le":
        return ((Cmp(column, "<=", value),),)
    slack = abs(value) / 10
    return ((Cmp(column, ">=", value - slack), Cmp(column, "<=", value + slack)),)


class NumberType:
    name = "number"
    modifiers: tuple[str, ...] = ()

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        numbers = [float(v) for v, _ in values
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        for number in numbers:
            yield "number", param.key, (number,)
        if numbers:
            yield "sort", param.key, (min(numbers),)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        return IndexMatch("number", param.key, prefixed_any_of(
            values, lambda prefix, text: conjunction(prefix, text, param.code)))


TYPE = NumberType()
