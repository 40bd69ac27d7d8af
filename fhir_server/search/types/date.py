"""date parameters (https://hl7.org/fhir/R4/search.html#date).

Index: the instant range each date, dateTime, instant, Period or Timing event covers
(``search/values.DateRange``; dates without a zone in the server's zone). Query: prefixes
eq ne gt lt ge le sa eb ap compare the stored range with the range of the query value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, prefixed_any_of, refuse_modifier
from fhir_server.search.values import MAX_MS, MIN_MS, DateRange

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam


def ranges(value: object, type_code: str, context: Context) -> Iterator[tuple[int, int]]:
    if isinstance(value, str):
        try:
            found = DateRange.parse(value, context.zone)
        except FhirError:
            return
        yield found.low, found.high
    elif isinstance(value, dict):
        if type_code == "Period" or "start" in value or "end" in value:
            low = next(ranges(value["start"], "dateTime", context), (MIN_MS,))[0] \
                if "start" in value else MIN_MS
            high = next(ranges(value["end"], "dateTime", context), (0, MAX_MS))[1] \
                if "end" in value else MAX_MS
            yield low, high
        elif type_code == "Timing":
            for event in value.get("event", []):
                yield from ranges(event, "dateTime", context)
            bounds = (value.get("repeat") or {}).get("boundsPeriod")
            if bounds:
                yield from ranges(bounds, "Period", context)


def conjunction(prefix: str, query: DateRange, low: str = "low",
                high: str = "high") -> tuple[Conjunction, ...]:
    """The stored-range conditions of one prefixed query range (any of them may hold).

    A stored range starts before it ends, so a bound on its end bounds its start too; that
    redundant bound on ``low`` turns an index seek into a bounded range (``birthdate=1952``
    would otherwise read every later birth date)."""
    q_low, q_high = query.low, query.high
    within = (Cmp(low, ">=", q_low), Cmp(low, "<=", q_high), Cmp(high, "<=", q_high))
    if prefix == "eq":
        return (within,)
    if prefix == "ne":
        return ((Cmp(low, "<", q_low),), (Cmp(high, ">", q_high),))
    if prefix == "gt":
        return ((Cmp(high, ">", q_high),),)
    if prefix == "lt":
        return ((Cmp(low, "<", q_low),),)
    if prefix == "ge":
        return ((Cmp(high, ">", q_high),), within)
    if prefix == "le":
        return ((Cmp(low, "<", q_low),), within)
    if prefix == "sa":
        return ((Cmp(low, ">", q_high),),)
    if prefix == "eb":
        return ((Cmp(low, "<", q_low), Cmp(high, "<", q_low)),)
    now = int(time.time() * 1000)
    slack = max(abs(now - q_low), abs(now - q_high)) // 10
    return ((Cmp(low, "<=", q_high + slack), Cmp(high, ">=", q_low - slack)),)


class DateType:
    name = "date"
    modifiers: tuple[str, ...] = ()

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        found = [r for value, type_code in values for r in ranges(value, type_code, context)]
        for low, high in found:
            yield "date", param.key, (low, high)
        if found:
            yield "sort", param.key, (min(low for low, _ in found),)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        return IndexMatch("date", param.key, prefixed_any_of(values, lambda prefix, text: (
            conjunction(prefix, DateRange.parse(text, context.zone, param.code)))))


TYPE = DateType()
