"""UCUM canonical forms, so quantities in different units of one dimension compare.

``5.4 mmol/L`` and ``5.4 mmol/l`` (and ``5400 umol/L``) reach the same canonical value and
unit. Conversion factors come from ucumvert (a UCUM parser onto pint) and are cached per
unit code; units with an offset (``Cel``) or that do not parse have no canonical form.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

UCUM = "http://unitsofmeasure.org"


_loading = threading.Lock()
_built: list[Any] = []


def _registry() -> Any:
    """The one registry of the process, built by whichever thread asks first."""
    if not _built:
        with _loading:
            if not _built:
                from ucumvert import PintUcumRegistry  # type: ignore[import-untyped]

                _built.append(PintUcumRegistry())
    return _built[0]


def warm_up() -> None:
    """Build the registry in a background thread (about a second of grammar and unit
    definitions), so the first quantity a server indexes does not stall its event loop."""
    threading.Thread(target=_registry, name="ucum-warm-up", daemon=True).start()


@lru_cache(maxsize=4096)
def canonical_unit(code: str) -> tuple[float, str] | None:
    """(factor, canonical unit) with value × factor in the canonical unit, or None."""
    try:
        registry = _registry()
        quantity = registry.from_ucum(code)
        if registry.Quantity(0, quantity.units).to_base_units().magnitude != 0:
            return None  # an offset unit such as Cel: no single factor
        base = quantity.to_base_units()
    except Exception:  # ucumvert raises many kinds for units it cannot read
        return None
    return float(base.magnitude) / float(quantity.magnitude), f"{base.units:~C}"


def canonical(value: float, system: str | None, code: str | None) -> tuple[float, str] | None:
    """The canonical (value, unit) of a UCUM quantity, or None."""
    if system != UCUM or not code:
        return None
    found = canonical_unit(code)
    return (value * found[0], found[1]) if found else None
