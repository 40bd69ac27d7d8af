"""Generate ``fhir_server/validation/r4_terminology.json`` from the official R4 definitions.

The table the validator reads to check coded values against the core definitions:

    {"bindings": {key: {json name: [strength, ValueSet url]}},
     "valueSets": {url: {"name": str, "codes": {system: [codes]}}},
     "codeSystems": {url: {"name": str, "caseSensitive": bool, "codes": [codes]}}}

A key is a type name or a backbone element's path, as in ``r4_structure.json``; choice
elements are listed under each JSON name. Only required, extensible and preferred bindings
of the base definitions are kept, and only to ValueSets whose expansion follows from the
package: codes listed, whole CodeSystems of complete content, ``is-a``, ``descendent-of``
and ``is-not-a`` filters on their hierarchy, other ValueSets included or excluded. Bindings
to anything else (SNOMED CT, LOINC, UCUM, BCP-47, currencies, MIME types) cannot be checked
without a terminology server and are left out. Every CodeSystem of complete content is kept
so that an unknown code in it is found wherever a Coding names it.
Run: ``python scripts/generate_core_terminology.py`` (fetches the npm package once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from fhir_server.tools import r4_package

OUT = Path(__file__).resolve().parent.parent / "fhir_server" / "validation" / \
    "r4_terminology.json"
STRENGTHS = ("required", "extensible", "preferred")
CODED = {"code", "Coding", "CodeableConcept"}


class Unexpandable(Exception):
    """A ValueSet whose codes do not follow from the package alone."""


def _concepts(concepts: list[dict], parents: tuple[str, ...] = ()) -> Iterator[
        tuple[str, tuple[str, ...]]]:
    """Every code of a concept tree with its ancestors."""
    for concept in concepts:
        yield concept["code"], parents
        yield from _concepts(concept.get("concept", []), (*parents, concept["code"]))


class Expander:
    """ValueSet expansions computed from the package's CodeSystems."""

    def __init__(self, value_sets: dict[str, dict], code_systems: dict[str, dict]) -> None:
        self.value_sets, self.code_systems = value_sets, code_systems
        self.trees = {url: dict(_concepts(cs.get("concept", [])))
                      for url, cs in code_systems.items()}
        self.done: dict[str, dict[str, set[str]]] = {}

    def expand(self, url: str, seen: tuple[str, ...] = ()) -> dict[str, set[str]]:
        if url in self.done:
            return self.done[url]
        if url in seen or url not in self.value_sets:
            raise Unexpandable(url)
        compose = self.value_sets[url].get("compose")
        if not compose:
            raise Unexpandable(url)
        codes: dict[str, set[str]] = {}
        for include in compose.get("include", []):
            for system, found in self._part(include, (*seen, url)).items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", []):
            for system, found in self._part(exclude, (*seen, url)).items():
                codes.get(system, set()).difference_update(found)
        self.done[url] = codes
        return codes

    def _part(self, part: dict, seen: tuple[str, ...]) -> dict[str, set[str]]:
        """The codes of one include (or exclude): its system's, cut by each ValueSet."""
        result: dict[str, set[str]] | None = None
        if "system" in part:
            system = part["system"]
            result = {system: self._system_codes(system, part)}
        for other in part.get("valueSet", []):
            codes = self.expand(other.split("|")[0], seen)
            result = codes if result is None else {
                s: c & codes.get(s, set()) for s, c in result.items()}
        return result or {}

    def _system_codes(self, system: str, part: dict) -> set[str]:
        if "concept" in part and not part.get("filter"):
            return {c["code"] for c in part["concept"]}
        tree = self.trees.get(system)
        if tree is None or self.code_systems[system].get("content") != "complete":
            raise Unexpandable(system)
        codes = set(tree)
        for rule in part.get("filter", []):
            if rule["property"] != "concept":
                raise Unexpandable(f"{system} filter {rule['property']}")
            codes &= self._filtered(tree, rule["op"], rule["value"])
        if "concept" in part:
            codes &= {c["code"] for c in part["concept"]}
        return codes

    @staticmethod
    def _filtered(tree: dict[str, tuple[str, ...]], op: str, value: str) -> set[str]:
        below = {code for code, parents in tree.items() if value in parents}
        if op == "is-a":
            return below | ({value} & tree.keys())
        if op == "descendent-of":
            return below
        if op == "is-not-a":
            return set(tree) - below - {value}
        raise Unexpandable(f"filter {op}")


def _bindings(definitions: list[dict]) -> dict[str, dict[str, list[str]]]:
    table: dict[str, dict[str, list[str]]] = {}
    for sd in definitions:
        if sd["kind"] == "primitive-type" or sd.get("derivation") == "constraint":
            continue
        root = sd["type"]
        for element in sd["snapshot"]["element"]:
            binding = element.get("binding") or {}
            codes = [t["code"] for t in element.get("type", []) if t["code"] in CODED]
            if binding.get("strength") not in STRENGTHS or "valueSet" not in binding \
                    or not codes or "." not in element["path"]:
                continue
            parent, name = element["path"].rsplit(".", 1)
            key = root if parent == root else parent
            names = [name[:-3] + c[0].upper() + c[1:] for c in codes] \
                if name.endswith("[x]") else [name]
            for json_name in names:
                table.setdefault(key, {})[json_name] = [
                    binding["strength"], binding["valueSet"].split("|")[0]]
    return table


def _package_resources(kind: str) -> dict[str, dict]:
    found = {}
    for path in sorted(r4_package.package_dir().glob(f"{kind}-*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource.get("resourceType") == kind and "url" in resource:
            found[resource["url"]] = resource
    return found


def main() -> None:
    definitions = [
        r for name in ("Bundle-types.json", "Bundle-resources.json")
        for r in r4_package.bundle_resources(name) if r["resourceType"] == "StructureDefinition"
    ]
    value_sets, code_systems = _package_resources("ValueSet"), _package_resources("CodeSystem")
    expander = Expander(value_sets, code_systems)
    bindings = _bindings(definitions)
    expansions, left_out = {}, set()
    for url in sorted({vs for elements in bindings.values() for _, vs in elements.values()}):
        try:
            codes = expander.expand(url)
        except Unexpandable:
            left_out.add(url)
            continue
        expansions[url] = {"name": value_sets[url].get("title") or value_sets[url]["name"],
                           "codes": {s: sorted(c) for s, c in sorted(codes.items())}}
    for elements in bindings.values():
        for name in [n for n, (_, vs) in elements.items() if vs in left_out]:
            del elements[name]
    systems = {
        url: {"name": cs.get("title") or cs.get("name", url),
              "caseSensitive": cs.get("caseSensitive", True) is not False,
              "codes": sorted(expander.trees[url])}
        for url, cs in sorted(code_systems.items()) if cs.get("content") == "complete"
    }
    table = {"fhirVersion": "4.0.1", "bindings": {k: v for k, v in bindings.items() if v},
             "valueSets": expansions, "codeSystems": systems}
    OUT.write_bytes(orjson.dumps(table, option=orjson.OPT_SORT_KEYS) + b"\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB): {len(expansions)} ValueSets, "
          f"{len(systems)} CodeSystems; {len(left_out)} bound ValueSets left out")


if __name__ == "__main__":
    main()
