"""Search values: escaping, prefixes, and dates/numbers with their implicit ranges.

One place parses and renders each (STYLE: parse and render together): ``DateRange`` turns a
FHIR date, dateTime or instant into the millisecond range its precision covers, for index
rows and query values alike; ``number_range`` does the same for decimals.
"""

from __future__ import annotations

import re
from calendar import isleap, monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from fhir_server.core.errors import FhirError

DAY_MS = 86_400_000
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
DATE = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]+))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?")
MIN_MS, MAX_MS = -62135596800000, 253402300799999  # years 1 and 9999


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` not preceded by a backslash; unescape ``\\, \\| \\$ \\\\``."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def split_raw(text: str, separator: str) -> list[str]:
    """Split on an unescaped separator, keeping escapes for a later split."""
    parts, start, index = [], 0, 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def unescape(text: str) -> str:
    return "".join(split_escaped(text, "\x00"))


def non_negative(raw: str | None, name: str, default: int) -> int:
    """A non-negative integer parameter (``_count``, ``offset``…), or ``default``."""
    if raw is None:
        return default
    if not raw.isdigit():
        raise FhirError(f"{name} must be a non-negative integer, got {raw!r}", name)
    return int(raw)


def prefixed(value: str) -> tuple[str, str]:
    """(prefix, rest): ``ge2020`` → (ge, 2020); no prefix → eq."""
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


@dataclass(frozen=True, slots=True)
class DateRange:
    """The instants (ms, inclusive) a FHIR date/dateTime/instant value covers."""

    low: int
    high: int

    @classmethod
    @lru_cache(maxsize=16384)
    def parse(cls, text: str, zone: timezone = UTC, parameter: str | None = None) -> DateRange:
        match = DATE.fullmatch(text.strip())
        if not match:
            raise FhirError(f"Invalid date/time {text!r}", parameter)
        tz = zone
        if match["tz"]:
            tz = UTC if match["tz"] == "Z" else timezone(timedelta(
                hours=int(match["tz"][1:3]), minutes=int(match["tz"][4:6]))
                * (1 if match["tz"][0] == "+" else -1))
        year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
        try:
            start = datetime(year, month, day, int(match["h"] or 0), int(match["mi"] or 0),
                             int(match["s"] or 0),
                             int((match["f"] or "0")[:6].ljust(6, "0")), tzinfo=tz)
        except ValueError:
            raise FhirError(f"Invalid date/time {text!r}", parameter) from None
        low = int(start.timestamp() * 1000)
        if match["f"]:
            span = 1
        elif match["s"]:
            span = 1000
        elif match["mi"]:
            span = 60_000
        elif match["d"]:
            span = DAY_MS
        elif match["m"]:
            span = monthrange(year, month)[1] * DAY_MS
        else:
            span = (366 if isleap(year) else 365) * DAY_MS
        return cls(low, low + span - 1)  # in ms, not datetimes: 9999-12-31T23:59+14:00 is legal


def number_range(text: str, parameter: str | None = None) -> tuple[float, float, float]:
    """(value, low, high): ``100`` covers [99.5, 100.5), ``1.50`` covers [1.495, 1.505)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise FhirError(f"Invalid number {text!r}", parameter) from None
    if not number.is_finite():
        raise FhirError(f"Invalid number {text!r}", parameter)
    exponent = number.as_tuple().exponent
    half = Decimal(5) * Decimal(10) ** (int(exponent) - 1)
    return float(number), float(number - half), float(number + half)
