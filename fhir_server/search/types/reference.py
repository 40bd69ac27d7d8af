"""reference parameters (https://hl7.org/fhir/R4/search.html#reference).

Index: target type and id of relative and absolute references (absolute ones also keep the
URL), canonical references as URL and version, and ``Reference.identifier`` under
``<key>:identifier`` (token table). Query: ``id``, ``Type/id``, ``Type/id/_history/v``,
absolute URLs (ours become ``Type/id``), ``url|version`` for canonicals; modifiers ``:Type``
and ``:identifier``. Chains and ``_has`` are built by the query parser on top.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fhir_server.core.errors import FhirError
from fhir_server.search.fhirpath import Typed
from fhir_server.search.plan import Cmp, Conjunction, IndexMatch, Node
from fhir_server.search.types.base import Context, Row
from fhir_server.search.types.token import TYPE as TOKEN
from fhir_server.search.values import unescape

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam

TAIL = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                  r"(?:/_history/(?P<version>[^/]+))?$")


def parse_reference(text: str) -> tuple[str, str, str, str]:
    """(type, id, url, version) of a reference string."""
    if text.startswith("#"):
        return "", "", "", ""
    absolute = ":" in text
    if "|" in text and absolute:
        url, _, version = text.partition("|")
        return "", "", url, version
    match = TAIL.search(text)
    if match and (absolute or match.start() == 0):
        return match["type"], match["id"], text if absolute else "", match["version"] or ""
    return "", "", text if absolute else "", ""


class ReferenceType:
    name = "reference"
    modifiers: tuple[str, ...] = ("identifier",)

    def extract(self, param: SearchParam, values: list[Typed],
                context: Context) -> Iterator[Row]:
        key = param.key
        found = []
        for value, _ in values:
            if isinstance(value, str):  # canonical / uri
                found.append(parse_reference(value))
            elif isinstance(value, dict):
                if isinstance(value.get("reference"), str):
                    row = parse_reference(value["reference"])
                    if any(row):
                        found.append(row)
                identifier = value.get("identifier")
                if isinstance(identifier, dict) and identifier.get("value"):
                    yield ("token", f"{key}:identifier",
                           (identifier.get("system", ""), identifier["value"]))
        for row in found:
            yield "reference", key, row

    def compile(self, param: SearchParam, modifier: str | None, values: list[str],
                context: Context) -> Node:
        if modifier == "identifier":
            return IndexMatch("token", f"{param.key}:identifier",
                              tuple(TOKEN.conjunction(v) for v in values))
        if modifier is not None and modifier not in param.targets and not (
                not param.targets and modifier[:1].isupper()):
            raise FhirError(f"The modifier :{modifier} is not supported for reference "
                            f"parameter '{param.code}'; use :identifier or a target type "
                            f"({', '.join(param.targets) or 'any'})", f"{param.code}:{modifier}")
        return IndexMatch("reference", param.key,
                          tuple(self.conjunction(param, modifier, unescape(v), context)
                                for v in values))

    @staticmethod
    def conjunction(param: SearchParam, target: str | None, value: str,
                    context: Context) -> Conjunction:
        if context.base_url and value.startswith(context.base_url + "/"):
            value = value[len(context.base_url) + 1:]
        rtype, rid, url, version = parse_reference(value)
        if url and not rid:
            found: Conjunction = (Cmp("url", "=", url),)
            return (*found, Cmp("version", "=", version)) if version else found
        if url:
            return (Cmp("url", "=", url),)
        if not rid:
            if not value or "/" in value:
                raise FhirError(f"Invalid reference value {value!r}", param.code)
            rid, rtype = value, target or (param.targets[0] if len(param.targets) == 1 else "")
        if target and rtype and target != rtype:
            raise FhirError(f"{value} is not a {target}", f"{param.code}:{target}")
        found = (Cmp("target_id", "=", rid),)
        if rtype:
            found = (Cmp("target_type", "=", rtype), *found)
        return found


TYPE = ReferenceType()
