"""Generate ``fhir_server/validation/r4_structure.json`` from the official R4 definitions.

The table is what the structure validator and the ``_summary`` filter read at start-up:

    {"primitives": {code: {"json": "string|boolean|integer|number", "regex": str|None}},
     "resources": [names],
     "types": {key: {name: [type codes, min, max, summary, choice base or ""]}},
     "invariants": {key: [[element name or "", constraint key, severity, human, expression]]},
     "extensions": {url: rule}}

A key is a type name (``Patient``, ``HumanName``) or the path of a backbone element
(``Patient.contact``); a type code of a backbone element is ``#`` plus its key. Choice
elements are expanded to their JSON names (``valueQuantity``) with one type each; ``max`` is
-1 for ``*``. An invariant is listed under the type or backbone element holding it, with the
element's name when it is on one of its elements (``ElementDefinition.max``); those the
validator checks in code are left out: ele-1 and ext-1 (structure), txt-1 and txt-2
(``narrative.py``), bdl-* (``bundle.py``); so are best-practice guidelines (dom-6: a
resource should have narrative), which are advice, not rules.
The R4 core extension definitions are compiled to the rules ``extensions.py`` checks (where
an extension may stand, its value types, its parts).
Run: ``python scripts/generate_structure.py`` (fetches the npm package once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from fhir_server.tools import r4_package
from fhir_server.validation.extensions import compile_rule, rule_to_json

OUT = Path(__file__).resolve().parent.parent / "fhir_server" / "validation" / "r4_structure.json"
FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
JSON_KIND = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
}


def _ext(items: list[dict], url: str) -> str | None:
    for item in items or []:
        if item.get("url") == url:
            return item.get("valueUrl") or item.get("valueString")
    return None


def _type_code(type_entry: dict) -> str:
    code = type_entry["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        return _ext(type_entry.get("extension", []), FHIR_TYPE) or "string"
    return code


def _primitives(type_defs: list[dict]) -> dict:
    table = {}
    for sd in type_defs:
        if sd["kind"] != "primitive-type":
            continue
        value = next(e for e in sd["snapshot"]["element"] if e["path"].endswith(".value"))
        regex = _ext(value["type"][0].get("extension", []), REGEX)
        table[sd["id"]] = {"json": JSON_KIND.get(sd["id"], "string"), "regex": regex}
    return table


def _element_types(element: dict) -> list[str]:
    if "contentReference" in element:
        return [element["contentReference"]]
    if not element.get("type"):
        return []
    codes = [_type_code(t) for t in element["type"]]
    if codes in (["BackboneElement"], ["Element"]) and "." in element["path"]:
        return ["#" + element["path"]]
    return codes


def _base_elements(definitions: list[dict]) -> Iterator[tuple[str, dict]]:
    """(type, element) of every element of the base definitions (not primitives, not
    profiles)."""
    for sd in definitions:
        if sd["kind"] == "primitive-type" or sd.get("derivation") == "constraint":
            continue
        for element in sd["snapshot"]["element"]:
            yield sd["type"], element


def _structures(definitions: list[dict]) -> dict:
    types: dict[str, dict] = {}
    for root, element in _base_elements(definitions):
        path = element["path"]
        if "." not in path:
            types.setdefault(root, {})
            continue
        parent, name = path.rsplit(".", 1)
        owner = types.setdefault(root if parent == root else parent, {})
        codes = _element_types(element)
        if codes and codes[0].startswith("#"):
            types.setdefault(codes[0][1:], {})
        max_ = -1 if element["max"] == "*" else int(element["max"])
        summary = bool(element.get("isSummary"))
        if name.endswith("[x]"):
            base = name[:-3]
            for code in codes:
                json_name = base + code[0].upper() + code[1:]
                owner[json_name] = [[code], element["min"], max_, summary, base]
        else:
            owner[name] = [codes, element["min"], max_, summary, ""]
    return types


IN_CODE = ("ele-1", "ext-1", "txt-1", "txt-2")
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


def _invariants(definitions: list[dict], types: dict) -> dict[str, list[list[str]]]:
    table: dict[str, list[list[str]]] = {}
    for root, element in _base_elements(definitions):
        path = element["path"]
        key, name = (path, "") if path == root or path in types else path.rsplit(".", 1)
        key = root if key == root else key
        for rule in element.get("constraint", []):
            if rule["key"] in IN_CODE or rule["key"].startswith("bdl-") \
                    or "expression" not in rule or any(
                        e.get("url") == BEST_PRACTICE and e.get("valueBoolean")
                        for e in rule.get("extension", [])):
                continue
            entry = [name.removesuffix("[x]"), rule["key"], rule["severity"],
                     rule["human"], rule["expression"]]
            if entry not in table.setdefault(key, []):
                table[key].append(entry)
    return table


# R4 erratum: its own definitions put this extension on ElementDefinition.type, not .code
MORE_CONTEXTS = {"http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type":
                 ["ElementDefinition.type"]}


def _extensions() -> dict[str, list]:
    table = {}
    for definition in r4_package.bundle_resources("Bundle-extensions.json"):
        if definition.get("resourceType") == "StructureDefinition":
            rule = rule_to_json(compile_rule(definition))
            rule[0] = sorted({*rule[0], *MORE_CONTEXTS.get(definition["url"], [])})
            table[definition["url"]] = rule
    return table


def main() -> None:
    type_defs = list(r4_package.bundle_resources("Bundle-types.json"))
    resource_defs = [
        r for r in r4_package.bundle_resources("Bundle-resources.json")
        if r["resourceType"] == "StructureDefinition"
    ]
    resources = sorted(
        sd["id"] for sd in resource_defs
        if sd["kind"] == "resource" and not sd.get("abstract")
    )
    types = _structures(type_defs + resource_defs)
    table = {
        "fhirVersion": "4.0.1",
        "primitives": _primitives(type_defs),
        "resources": resources,
        "types": types,
        "invariants": _invariants(type_defs + resource_defs, types),
        "extensions": _extensions(),
    }
    OUT.write_bytes(orjson.dumps(table, option=orjson.OPT_SORT_KEYS) + b"\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(table['types'])} types)")


if __name__ == "__main__":
    main()
