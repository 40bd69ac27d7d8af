"""The FHIRPath invariants of the R4 core definitions (dom-2, per-1, qty-3, obs-6, …),
compiled once (``fhirpath_compiler.py``) and evaluated on every instance of the type or
element they are defined on, as the structure validator walks a resource.

An invariant whose result is false is an issue of its own severity (error or warning, as
the definitions say); an empty result is no finding. Invariants the compiler cannot handle,
and any that fails on an unexpected shape of data, are not evaluated: ``not_evaluated``
lists them (docs/validation.md says why).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fhir_server.outcome import Issue
from fhir_server.validation.fhirpath_compiler import Env, Fn, NotCompiled, compile_fhirpath


@dataclass(frozen=True, slots=True)
class Invariant:
    element: str  # the element it is on ("" for the type or backbone element itself)
    key: str
    severity: str
    human: str
    evaluate: Fn


class Invariants:
    """The compiled invariants by type key (a type name or a backbone element's path)."""

    def __init__(self, raw: dict[str, list[list[str]]], choices: frozenset[str]) -> None:
        self.choices = choices
        self.by_type: dict[str, tuple[Invariant, ...]] = {}
        self.not_evaluated: list[tuple[str, str, str]] = []  # (type key, key, why)
        for type_key, rules in raw.items():
            compiled = []
            for element, key, severity, human, expression in rules:
                try:
                    evaluate = compile_fhirpath(expression)
                except NotCompiled as why:
                    self.not_evaluated.append((type_key, key, str(why)))
                    continue
                compiled.append(Invariant(element, key, severity, human, evaluate))
            self.by_type[type_key] = tuple(compiled)

    def check(self, obj: dict[str, Any], type_code: str, path: str, resource: Any, root: Any,
              issues: list[Issue]) -> None:
        """Evaluate the invariants of one instance of a type (``obj`` at ``path``)."""
        for invariant in self.by_type.get(type_code.removeprefix("#"), ()):
            for context, where in _contexts(obj, invariant.element, path):
                try:
                    result = invariant.evaluate(Env(resource, root, context, self.choices),
                                               [context])
                except (NotCompiled, TypeError, ValueError, AttributeError, IndexError,
                        re.error):
                    continue  # a shape the expression does not expect: no verdict
                if result == [False]:
                    issues.append(Issue("invariant", f"{invariant.key}: {invariant.human}",
                                        where, invariant.severity))


def _contexts(obj: dict[str, Any], element: str, path: str) -> Iterator[tuple[Any, str]]:
    if not element:
        yield obj, path
        return
    for key, value in obj.items():
        if key == element or (key.startswith(element) and len(key) > len(element)
                              and key[len(element)].isupper()):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    yield item, f"{path}.{key}[{index}]"
            else:
                yield value, f"{path}.{key}"
