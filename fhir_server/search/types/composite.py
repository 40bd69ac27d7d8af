"""composite parameters (https://hl7.org/fhir/R4/search.html#composite).

The R4 composites of the served types pair a token with a token, quantity, date or string
(``Observation code-value-quantity`` …). Index: one row per pair found in the same element
(the Observation, or one of its components). Query: ``token$value``, each half as its type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.normalize import normalize
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types import date as date_type
from fhir_server.search.types import quantity as quantity_type
from fhir_server.search.types.base import Context, Row, refuse_modifier
from fhir_server.search.types.string import texts
from fhir_server.search.types.token import TYPE as TOKEN
from fhir_server.search.types.token import codes
from fhir_server.search.values import DateRange, prefixed, split_raw, unescape

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

SECOND = {"token", "quantity", "date", "string"}  # unused second-half columns hold 0 or ""


def _second(kind: str, value: object, type_code: str,
            context: Context) -> Iterator[tuple[object, ...]]:
    """(v_system, v_code, v_low, v_high, v_text) of the second component's value."""
    if kind == "token":
        for system, code, _ in codes(value, type_code):
            if code:
                yield system, code, 0, 0, ""
    elif kind == "quantity":
        for system, code, number in quantity_type.quantities(value):
            yield system, code, number, number, ""
    elif kind == "date":
        for low, high in date_type.ranges(value, type_code, context):
            yield "", "", low, high, ""
    else:
        for text in texts(value, type_code):
            yield "", "", 0, 0, normalize(text)


class CompositeType:
    name = "composite"
    modifiers: tuple[str, ...] = ()

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        if len(param.components) != 2 or param.components[1].type not in SECOND:
            return
        first, second = param.components
        for element, type_code in values:
            left = [(s, c) for v, t in first.accessor.evaluate(element, type_code)
                    for s, c, _ in codes(v, t) if c]
            right = [r for v, t in second.accessor.evaluate(element, type_code)
                     for r in _second(second.type, v, t, context)]
            for system, code in left:
                for row in right:
                    yield "composite", param.key, (system, code, *row)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        if len(param.components) != 2 or param.components[1].type not in SECOND:
            raise FhirError(f"The composite parameter '{param.code}' is not supported",
                            param.code)
        kind = param.components[1].type
        any_of: list[Conjunction] = []
        for raw in values:
            halves = split_raw(raw, "$")
            if len(halves) != 2:
                raise FhirError(f"A value of '{param.code}' needs two parts joined by $",
                                param.code)
            token = TOKEN.conjunction(halves[0])
            any_of += [(*token, *c) for c in self._second(kind, halves[1], param, context)]
        return IndexMatch("composite", param.key, tuple(any_of))

    @staticmethod
    def _second(kind: str, raw: str, param: SearchParam,
                context: Context) -> tuple[Conjunction, ...]:
        if kind == "token":
            return (tuple(Cmp("v_" + c.column, c.op, c.value) for c in TOKEN.conjunction(raw)),)
        if kind == "quantity":
            return quantity_type.conjunctions(raw, param.code, ("v_system", "v_code", "v_low"))
        if kind == "date":
            prefix, text = prefixed(raw)
            return date_type.conjunction(prefix, DateRange.parse(text, context.zone,
                                                                 param.code), "v_low", "v_high")
        return ((Cmp("v_text", "prefix", normalize(unescape(raw))),),)


TYPE = CompositeType()
