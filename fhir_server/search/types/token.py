"""token parameters (https://hl7.org/fhir/R4/search.html#token).

Index: (system, code) per Coding / Identifier / ContactPoint / code / boolean value (a bare
``code`` with the system its required binding implies, ``SearchParam.code_system``); the
display texts under ``<key>:text`` (string table) for ``:text``; an Identifier's type under
``<key>:of-type``. Query: ``code``, ``system|code``, ``|code``, ``system|``; modifiers
``:not``, ``:text``, ``:of-type``, and ``:in``, ``:not-in``, ``:above``, ``:below`` through
the terminology the context offers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.normalize import normalize
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, refuse_modifier
from fhir_server.search.values import split_escaped, split_raw

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

TERMINOLOGY = ("in", "not-in", "above", "below")


def codes(value: object, type_code: str) -> Iterator[tuple[str, str, str]]:
    """(system, code, display text) of one typed value."""
    if isinstance(value, bool):
        yield "", "true" if value else "false", ""
    elif isinstance(value, str | int | float):
        yield "", str(value), ""
    elif isinstance(value, dict):
        if type_code == "CodeableConcept" or "coding" in value:
            for coding in value.get("coding", []):
                yield from codes(coding, "Coding")
            if value.get("text"):
                yield "", "", value["text"]
        elif type_code == "Identifier":
            if value.get("value"):
                yield value.get("system", ""), value["value"], ""
        elif type_code == "ContactPoint":
            if value.get("value"):
                yield "", value["value"], ""
        elif value.get("code") is not None:
            yield value.get("system", ""), str(value["code"]), value.get("display", "")
        elif value.get("value") is not None:
            yield value.get("system", ""), str(value["value"]), ""


class TokenType:
    name = "token"
    modifiers: tuple[str, ...] = ("not", "text", "of-type", *TERMINOLOGY)

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        key = param.key
        for value, type_code in values:
            for system, code, text in codes(value, type_code):
                if type_code == "code" and not system:
                    system = param.code_system
                if code:
                    yield "token", key, (system, code)
                if text:
                    yield "string", f"{key}:text", (normalize(text), text)
            if type_code == "Identifier" and isinstance(value, dict) and value.get("value"):
                for coding in (value.get("type") or {}).get("coding", []):
                    yield ("token", f"{key}:of-type",
                           (f"{coding.get('system', '')}|{coding.get('code', '')}",
                            value["value"]))

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        if modifier == "text":
            return IndexMatch("string", f"{param.key}:text",
                              tuple((Cmp("norm", "prefix", normalize(v)),) for v in values))
        if modifier == "of-type":
            return IndexMatch("token", f"{param.key}:of-type",
                              tuple(self._of_type(param, v) for v in values))
        if modifier in TERMINOLOGY:
            return self._terminology(param, modifier, values, context)
        return IndexMatch("token", param.key, tuple(self.conjunction(v) for v in values),
                          negate=modifier == "not")

    @staticmethod
    def conjunction(value: str) -> Conjunction:
        """The match of one ``[system|]code`` value (escapes honoured)."""
        parts = split_raw(value, "|")
        if len(parts) == 1:
            return (Cmp("code", "=", split_escaped(value, "\x00")[0]),)
        system, code = split_escaped(parts[0], "\x00")[0], split_escaped(
            "|".join(parts[1:]), "\x00")[0]
        if not code:
            return (Cmp("system", "=", system),)
        return (Cmp("system", "=", system), Cmp("code", "=", code))

    @staticmethod
    def _of_type(param: SearchParam, value: str) -> Conjunction:
        parts = split_escaped(value, "|")
        if len(parts) != 3 or not all(parts):
            raise FhirError(f":of-type needs system|code|value, got {value!r}",
                            f"{param.code}:of-type")
        return (Cmp("system", "=", f"{parts[0]}|{parts[1]}"), Cmp("code", "=", parts[2]))

    @staticmethod
    def _terminology(param: SearchParam, modifier: str, values: list[str],
                     context: Context) -> Node:
        if context.code_set is None:
            raise FhirError(f":{modifier} needs terminology this server does not hold",
                            f"{param.code}:{modifier}")
        pairs: list[tuple[str, str]] = []
        for value in values:
            system, _, code = value.rpartition("|") if modifier in ("above", "below") \
                else ("", "", value)
            pairs += context.code_set(modifier, system, code)
        any_of = tuple(tuple(cmp for cmp in (Cmp("system", "=", s) if s else None,
                                             Cmp("code", "=", c) if c else None) if cmp)
                       for s, c in pairs)
        return IndexMatch("token", param.key, any_of or ((Cmp("code", "in", ()),),),
                          negate=modifier == "not-in")


TYPE = TokenType()
