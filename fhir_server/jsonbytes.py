"""JSON that keeps each decimal as it was written (https://hl7.org/fhir/R4/json.html#primitive:
"the precision of a decimal is part of its value": ``1.00`` is not ``1.0``).

Resources are parsed with msgspec, whose float hook hands us each decimal's text: it
becomes a ``Decimal``, a ``float`` that remembers its text. Everything that computes with
numbers (validation, search indexing, FHIRPath) sees a float; ``dumps`` writes the text
back as it came (orjson embeds it as a raw fragment), so stored bytes, and every answer
served from them, keep ``1.00``, ``66.899999999999991`` and ``1.000000000000000000E-245``.
Numbers computed here (plain floats) are written as orjson writes them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson


class Decimal(float):
    """A JSON decimal: its value as a float, and its text as written."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Decimal:
        number = float.__new__(cls, text)
        number.text = text
        return number

    def __reduce__(self) -> tuple[type[Decimal], tuple[str]]:
        return Decimal, (self.text,)


DECODER = msgspec.json.Decoder(float_hook=Decimal)
LONG_DIGITS = re.compile(rb"\d{19}")  # an integer this long may not fit in 64 bits
INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson writes


def loads(data: bytes | str) -> Any:
    """Parse JSON, decimals kept as written; raises ``msgspec.DecodeError`` when malformed.
    An integer beyond 64 bits becomes a ``Decimal`` too (as orjson reads it, a float), so
    that it can be written back and validation sees it is no FHIR integer."""
    value = DECODER.decode(data)
    raw = data.encode() if isinstance(data, str) else data
    return _huge_as_decimal(value) if LONG_DIGITS.search(raw) else value


def _huge_as_decimal(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _huge_as_decimal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_huge_as_decimal(item) for item in value]
    if type(value) is int and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return Decimal(str(value))
    return value


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any, option: int = 0) -> bytes:
    """``orjson.dumps``, decimals written as they were read."""
    return orjson.dumps(value, default=_fragment, option=option)
