"""Generate ``fhir_server/search/r4_search_params.json`` from the official R4 definitions.

For every served resource type, each official SearchParameter whose base includes it (or
``Resource`` / ``DomainResource``) becomes one entry, with the expression cut to the parts
that start at that type and ``(x as T)`` / ``x.as(T)`` rewritten to ``x.ofType(T)`` (the form
FHIRPath engines accept). Composite components are resolved to their parameters' types.
A token parameter over primitive ``code`` elements whose required binding draws on one code
system gets that system (``codeSystem``): ``Patient.gender`` values are indexed as
``http://hl7.org/fhir/administrative-gender|female``, so a query with the system matches.
Also written: the Patient / Practitioner / Encounter / RelatedPerson / Device compartments.
Run: ``python scripts/generate_search_params.py`` (fetches the npm package once).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from fhir_server.core.registry import r4_resource_types
from fhir_server.tools import r4_package

OUT = Path(__file__).resolve().parent.parent / "fhir_server" / "search" / "r4_search_params.json"
COMMON_BASES = ("Resource", "DomainResource")
AS_INFIX = re.compile(r"\(([A-Za-z][\w.]*) as ([A-Za-z]+)\)")
AS_INFIX_BARE = re.compile(r"([A-Za-z][\w.]*) as ([A-Za-z]+)")
AS_CALL = re.compile(r"\.as\(([A-Za-z]+)\)")


def split_union(expression: str) -> list[str]:
    """Top-level ``|`` alternatives of a FHIRPath expression."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(expression):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and depth == 0 and char == "|":
            parts.append(expression[start:index].strip())
            start = index + 1
    parts.append(expression[start:].strip())
    return parts


def normalise(expression: str) -> str:
    expression = AS_INFIX.sub(r"\1.ofType(\2)", expression)
    expression = AS_INFIX_BARE.sub(r"\1.ofType(\2)", expression)
    return AS_CALL.sub(r".ofType(\1)", expression)


def expression_for(expression: str, resource_type: str) -> str | None:
    roots = (resource_type, *COMMON_BASES)
    kept = []
    for part in split_union(normalise(expression)):
        bare = part.strip()
        while bare.startswith("(") and bare.endswith(")"):
            bare = bare[1:-1].strip()
        root = re.match(r"[A-Za-z]+", bare)
        if root and root.group(0) in roots:
            kept.append(resource_type + bare[len(root.group(0)):])
    return " | ".join(kept) if kept else None


def bound_systems() -> dict[str, str]:
    """Element path -> the one code system of its required binding, for ``code`` elements."""
    value_sets = {vs["url"]: vs for name in ("Bundle-valuesets.json", "Bundle-v3-valuesets.json")
                  for vs in r4_package.bundle_resources(name) if vs["resourceType"] == "ValueSet"}
    found = {}
    for sd in r4_package.bundle_resources("Bundle-resources.json"):
        for element in sd.get("snapshot", {}).get("element", []) \
                if sd["resourceType"] == "StructureDefinition" else []:
            binding = element.get("binding", {})
            if [t["code"] for t in element.get("type", [])] != ["code"] \
                    or binding.get("strength") != "required":
                continue
            value_set = value_sets.get(binding["valueSet"].split("|")[0], {})
            systems = {i.get("system") for i in value_set.get("compose", {}).get("include", [])}
            if len(systems) == 1 and None not in systems:
                found[element["path"]] = systems.pop()
    return found


def code_system(expression: str, bound: dict[str, str]) -> str | None:
    """The one system every part of a token expression implies, if each part is a bound
    ``code`` element."""
    systems = {bound.get(part) for part in split_union(expression)}
    return systems.pop() if len(systems) == 1 and None not in systems else None


def main() -> None:
    definitions = list(r4_package.bundle_resources("Bundle-searchParams.json"))
    bound = bound_systems()
    by_url = {sp["url"]: sp for sp in definitions}
    params: dict[str, dict[str, dict]] = {}
    for sp in definitions:
        for rtype in r4_resource_types():
            if rtype not in sp["base"] and not set(COMMON_BASES) & set(sp["base"]):
                continue
            entry = {"url": sp["url"], "type": sp["type"],
                     "expression": expression_for(sp.get("expression") or "", rtype)}
            if sp.get("target"):
                entry["target"] = sorted(set(sp["target"]))
            if sp["type"] == "token" and entry["expression"]:
                system = code_system(entry["expression"], bound)
                if system:
                    entry["codeSystem"] = system
            if sp.get("component"):
                entry["component"] = [
                    {"type": by_url[c["definition"]]["type"],
                     "expression": normalise(c["expression"]),
                     "code": by_url[c["definition"]]["code"]}
                    for c in sp["component"]]
            if entry["expression"] is None and sp["code"] not in ("_text", "_content",
                                                                  "_query", "_list"):
                continue
            params.setdefault(rtype, {})[sp["code"]] = entry
    compartments = {}
    for name in ("patient", "practitioner", "encounter", "relatedPerson", "device"):
        definition = r4_package.load(f"CompartmentDefinition-{name}.json")
        compartments[definition["code"]] = {
            r["code"]: r["param"] for r in definition["resource"]
            if r.get("param") and r["code"] in r4_resource_types()}
    table = {"fhirVersion": "4.0.1", "params": params, "compartments": compartments}
    OUT.write_bytes(orjson.dumps(table, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
                    + b"\n")
    print(f"wrote {OUT}: {sum(len(p) for p in params.values())} parameters")


if __name__ == "__main__":
    main()
