"""quantity parameters (https://hl7.org/fhir/R4/search.html#quantity), UCUM-aware.

Index: (system, code or unit, value), plus a canonical UCUM row (``search/ucum.py``) so
``5.4|http://unitsofmeasure.org|mmol/L`` finds ``5.4 mmol/l`` and ``5400 umol/L``. Query:
``[prefix]number[|system|code]``, ``number||code`` (code or unit), prefixes as numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, refuse_modifier
from fhir_server.search.types.number import conjunction as number_conjunction
from fhir_server.search.ucum import UCUM, canonical, canonical_unit
from fhir_server.search.values import number_range, prefixed, split_escaped

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

CANONICAL = "canonical:" + UCUM  # system of canonical rows, apart from the stored ones


def quantities(value: object) -> Iterator[tuple[str, str, float]]:
    """(system, code or unit, value) of a Quantity-like element (Money too)."""
    if not isinstance(value, dict):
        return
    number = value.get("value")
    if not isinstance(number, int | float) or isinstance(number, bool):
        return
    if "currency" in value:
        yield "urn:iso:std:iso:4217", value["currency"], float(number)
        return
    system, code, unit = value.get("system", ""), value.get("code", ""), value.get("unit", "")
    yield system, code or unit, float(number)
    if code and unit and unit != code:
        yield system, unit, float(number)
    found = canonical(float(number), system, code)
    if found:
        yield CANONICAL, found[1], found[0]


class QuantityType:
    name = "quantity"
    modifiers: tuple[str, ...] = ()

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        rows = [q for value, _ in values for q in quantities(value)]
        for row in rows:
            yield "quantity", param.key, row
        if rows:
            yield "sort", param.key, (min(v for s, _, v in rows if s != CANONICAL),)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        any_of: list[Conjunction] = []
        for raw in values:
            any_of += conjunctions(raw, param.code)
        return IndexMatch("quantity", param.key, tuple(any_of))


def conjunctions(raw: str, parameter: str, prefix_columns: tuple[str, str, str] = (
        "system", "code", "value")) -> tuple[Conjunction, ...]:
    """The conditions of one ``[prefix]number|system|code`` value."""
    system_column, code_column, value_column = prefix_columns
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        raise FhirError(f"Invalid quantity {raw!r}; use [prefix]number|system|code", parameter)
    prefix, number = prefixed(parts[0])
    system, code = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    unit: Conjunction = ()
    if system == UCUM and code and canonical_unit(code):
        factor, canonical_code = canonical_unit(code)  # type: ignore[misc]
        value, _, _ = number_range(number, parameter)
        scaled = repr(value * factor)
        unit = (Cmp(system_column, "=", CANONICAL), Cmp(code_column, "=", canonical_code))
        return tuple((*unit, *c) for c in number_conjunction(
            prefix, _rescale(number, scaled), parameter, value_column))
    if system:
        unit += (Cmp(system_column, "=", system),)
    else:  # canonical rows restate stored values in other units: not for unitless queries
        unit += (Cmp(system_column, "!=", CANONICAL),)
    if code:
        unit += (Cmp(code_column, "=", code),)
    return tuple((*unit, *c) for c in number_conjunction(prefix, number, parameter,
                                                          value_column))


def _rescale(original: str, scaled: str) -> str:
    """``scaled`` rounded to the significant digits ``original`` has (keeps its precision)."""
    digits = len(original.lstrip("+-0").replace(".", "").lstrip("0")) or 1
    return f"{float(scaled):.{digits}g}"


TYPE = QuantityType()
