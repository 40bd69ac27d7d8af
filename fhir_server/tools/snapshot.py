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


def _slice(base: Element, change: Element) -> Element:
    """A slice entry: the sliced element's definition without its ``slicing`` (a slice
    carries slicing only when it is itself re-sliced)."""
    merged = _apply(base, change)
    if "slicing" not in change:
        merged.pop("slicing", None)
    return merged


def _children(base: list[Element], root: str, prefix_id: str, prefix_path: str,
              differential: dict[str, Element]) -> list[Element]:
    """The base elements under ``root`` re-homed under a slice, differential applied."""
    out = []
    for element in base:
        if not element["path"].startswith(root + "."):
            continue
        element_id = prefix_id + element["id"][len(root):]  # keeps nested slice names
        path = prefix_path + element["path"][len(root):]
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
                snapshot.append(_slice(element, item))
                snapshot += _children(base, "Extension", item["id"], "Extension.extension",
                                      by_id)
    return snapshot


def _expanded(base: list[Element], differential: list[Element],
              datatypes: dict[str, list[Element]]) -> list[Element]:
    """The base snapshot with the elements of each complex data type the differential
    reaches into (``Observation.code.coding`` inside a CodeableConcept) inserted after the
    element of that type, as often as the differential goes deeper."""
    wanted = {e["path"] for e in differential if ":" not in e["id"]}  # slices' own children
    while True:
        known = {e["path"] for e in base}
        missing = wanted - known
        grown: list[Element] = []
        for element in base:
            grown.append(element)
            types = element.get("type", [])
            inner = datatypes.get(types[0]["code"], []) if len(types) == 1 else []
            if inner and f"{element['path']}.{inner[1]['path'].partition('.')[2]}" not in known \
                    and any(m.startswith(element["path"] + ".") for m in missing):
                size = len(inner[0]["id"])
                grown += [{**copy.deepcopy(child), "id": element["id"] + child["id"][size:],
                           "path": element["path"] + child["path"][size:]}
                          for child in inner[1:]]
        if len(grown) == len(base):
            return base
        base = grown


def resource_snapshot(base: list[Element], differential: list[Element],
                      extensions: dict[str, list[Element]],
                      datatypes: dict[str, list[Element]]) -> list[Element]:
    """The snapshot of a resource profile: the base snapshot (with the data types the
    differential reaches into expanded; ``datatypes``: snapshot elements by type) and the
    differential applied by element id, each slice (``Type.element:slice``) placed after
    the element it slices. An extension slice is followed by the children of its
    extension's own snapshot (``extensions``: snapshot elements by extension url); other
    slices by their constrained children."""
    base = _expanded(base, differential, datatypes)
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
            snapshot.append(_slice(base_by_id[element["id"]], item))
            profile = next((url for t in item.get("type", []) for url in t.get("profile", [])),
                           None)
            if profile in extensions:  # its top-level children: nested slices stay in the
                snapshot += [child for child in _children(  # extension's own definition
                    extensions[profile], "Extension", item["id"], element["path"], by_id)
                    if ":" not in child["id"][len(item["id"]):]]
            else:
                snapshot += [{"min": 0, "max": "1", **child} for child in differential
                             if child["id"].startswith(item["id"] + ".")]
    return snapshot
