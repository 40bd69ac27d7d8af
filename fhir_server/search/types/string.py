"""string parameters (https://hl7.org/fhir/R4/search.html#string), Chinese-aware.

Index: each name part, address part or string, normalised (``search/normalize.py``) and
exact; a HumanName also as family + given run together (``张三``). Parameters with the
alliance ``pinyin`` normaliser index full pinyin and initials instead. The first value's
first form is the resource's sort value: a name's text (or a Chinese name's family + given,
else its family), so ``_sort=name-pinyin`` orders 何兰 (helan), 黄伟 (huangwei), 刘梅
(liumei). Query: starts-with by default, ``:exact``, ``:contains``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.search.fhirpath import Typed
from fhir_server.search.normalize import has_han, normalize, pinyin_forms
from fhir_server.search.plan import Cmp, IndexMatch, Node
from fhir_server.search.types.base import Context, Row, refuse_modifier, strings_in
from fhir_server.search.values import unescape

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

NAME_PARTS = ("family", "given", "prefix", "suffix")  # after the text
ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def texts(value: object, type_code: str) -> list[str]:
    """The searchable strings of one typed value."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    if type_code == "HumanName":  # the text, or a Chinese name's family + given, first
        found = strings_in(value.get("text"))
        family, given = value.get("family", ""), "".join(value.get("given", []))
        if family and given and (has_han(family) or has_han(given)):
            found.append(family + given)
        return found + [s for part in NAME_PARTS for s in strings_in(value.get(part))]
    if type_code == "Address":
        return [s for part in ADDRESS_PARTS for s in strings_in(value.get(part))]
    return strings_in(value)


class StringType:
    name = "string"
    modifiers: tuple[str, ...] = ("exact", "contains")

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        forms = [(form, text) for value, type_code in values for text in texts(value, type_code)
                 for form in (pinyin_forms(text) if param.normalizer == "pinyin"
                              else (normalize(text),))]
        for form, text in forms:
            yield "string", param.key, (form, text)
        if forms:  # the first value's first form: 刘梅 (liumei), not its lowest part (梅)
            yield "sort", param.key, (forms[0][0],)

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        refuse_modifier(param, modifier, self.modifiers)
        any_of = []
        for raw in values:
            value = unescape(raw)
            if modifier == "exact":
                any_of.append((Cmp("exact", "=", value),))
                continue
            folded = self._query_form(param, value)
            any_of.append((Cmp("norm", "contains" if modifier == "contains" else "prefix",
                               folded),))
        return IndexMatch("string", param.key, tuple(any_of))

    @staticmethod
    def _query_form(param: SearchParam, value: str) -> str:
        if param.normalizer == "pinyin":
            forms = pinyin_forms(value)
            return forms[0] if forms else normalize(value).replace(" ", "")
        return normalize(value)


TYPE = StringType()
