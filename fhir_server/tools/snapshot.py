"""Snapshot generation for extension StructureDefinitions (differential → snapshot).

Used by ``scripts/generate_profiles.py``; not by the running server. A snapshot is the base
snapshot with the differential applied element by element (cardinality, types, fixed and
pattern values, bindings, short/definition). For a complex extension each
``extension:slice`` gets the base ``Extension`` children under its own ids; in a resource
profile each slice follows the element it slices.
"""

from __future__ import annotations

import copy
from typing import Any

Element = dict[str, Any]
APPLIED = ("short", "definition", "min", "max", "type", "fixedUri", "sliceName",
           "slicing", "comment", "patternIdentifier", "patternCodeableConcept",
           "patternCoding", "binding", "mustSupport")


def _apply(base: Element, change: Element) -> Element:
    merged = copy.deepcopy(base)
    merged.update({k: copy.deepcopy(v) for k, v in change.items() if k in APPLIED})
    if change.get("constraint"):
        merged["constraint"] = [*merged.get("constraint", []), *copy.deepcopy(
            change["constraint"])]
    merged["id"], merged["path"] = change["id"], change["path"]
    return merged


def _children(base: list[Element], root: str, prefix_id: str, prefix_path: str,
              differential: dict[str, Element]) -> list[Element]:
    """The base elements under ``root`` re-homed under a slice, differential applied."""
    out = []
    for element in base:
        if not element["path"].startswith(root + "."):
            continue
        tail = element["path"][len(root):]
        element_id, path = prefix_id + tail, prefix_path + tail
        change = differential.get(element_id, {"id": element_id, "path": path})
        out.append(_apply({**element, "id": element_id, "path": path}, change))
    return out


def extension_snapshot(base: list[Element], differential: list[Element]) -> list[Element]:
    """The snapshot of an extension whose differential constrains ``Extension``."""
    by_id = {e["id"]: e for e in differential}
    slices = [e for e in differential if e["id"].startswith("Extension.extension:")
              and e["id"].count(".") == 1]
    snapshot: list[Element] = []
    for element in base:
        change = by_id.get(element["id"], {"id": element["id"], "path": element["path"]})
        snapshot.append(_apply(element, change))
        if element["id"] == "Extension.extension":
            for item in slices:
                snapshot.append(_apply(element, item))
                snapshot += _children(base, "Extension", item["id"], "Extension.extension",
                                      by_id)
    return snapshot


def resource_snapshot(base: list[Element], differential: list[Element]) -> list[Element]:
    """The snapshot of a resource profile: the base snapshot with the differential applied
    by element id, each slice (``Type.element:slice``) placed after the element it slices,
    followed by the slice's own constrained children (an extension slice's fixed url)."""
    by_id = {e["id"]: e for e in differential}
    slices: dict[str, list[Element]] = {}
    for element in differential:
        head, _, name = element["id"].partition(":")
        if name and "." not in name:
            slices.setdefault(head, []).append(element)
    base_by_id = {e["id"]: e for e in base}
    snapshot: list[Element] = []
    for element in base:
        change = by_id.get(element["id"], {"id": element["id"], "path": element["path"]})
        snapshot.append(_apply(element, change))
        for item in slices.get(element["id"], []):
            snapshot.append(_apply(base_by_id[element["id"]], item))
            snapshot += [{"min": 0, "max": "1", **child} for child in differential
                         if child["id"].startswith(item["id"] + ".")]
    return snapshot
