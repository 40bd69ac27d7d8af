"""patch bodies: JSON Patch (RFC 6902, via ``jsonpatch``), FHIRPath Patch, JSON Merge Patch.

JSON Merge Patch (RFC 7386) is accepted for a plain JSON object body because popular clients
(fhirpy) send one.

FHIRPath Patch (https://hl7.org/fhir/R4/fhirpatch.html) needs the *location* of the element a
path selects, which FHIRPath engines (fhirpathpy included) do not return: they return copies.
So paths are resolved here by a small locator for the subset patches use in practice:
``Type.name[0].given``, ``.first()``, ``.last()``, ``.where(child = 'literal')``. Anything
else is a 400 that says so.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import jsonpointer  # type: ignore[import-untyped]

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError, PayloadTooLarge, Unprocessable
from fhir_server.core.jsonio import MAX_DEPTH, parse_json
from fhir_server.types import Resource
from fhir_server.validation.structure import StructureTable, r4_table

STEP = re.compile(
    r"\.(?P<func>first|last)\(\)"
    r"|\.where\(\s*(?P<field>[A-Za-z][A-Za-z0-9_]*)\s*=\s*'(?P<literal>(?:[^'\\]|\\.)*)'\s*\)"
    r"|\.(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\[(?P<index>[0-9]+)\])?")


JSON_PATCH = "application/json-patch+json"
Patcher = Callable[[Resource], Resource]


def patcher(media_type: str, body: bytes, max_bytes: int = 16 * 1024 * 1024,
            max_depth: int = MAX_DEPTH) -> Patcher:
    """The function a PATCH body stands for, chosen by its media type and shape. A JSON
    Patch result may not exceed ``max_bytes``; FHIRPath and merge patches only add values
    of their own body, so they cannot grow beyond the stored resource and the body."""
    document = parse_json(body, max_depth=max_depth)
    if media_type == JSON_PATCH:
        return lambda resource: apply_json_patch(resource, document, max_bytes)
    if not isinstance(document, dict):
        raise FhirError("A PATCH body must be a JSON Patch array (application/json-patch+json), "
                        "a FHIRPath Patch Parameters resource, or a JSON merge patch object")
    if document.get("resourceType") == "Parameters":
        return lambda resource: FhirPathPatch().apply(resource, document)
    return lambda resource: merge_patch(copy.deepcopy(resource), document)


def merge_patch(target: Resource, patch: Resource) -> Resource:
    """RFC 7386: null deletes, objects merge, everything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = merge_patch(target[key], value)
        else:
            target[key] = value
    return target


def apply_json_patch(resource: Resource, operations: Any,
                     max_bytes: int = 16 * 1024 * 1024) -> Resource:
    """RFC 6902 operations applied one by one to a copy; a failing ``test`` or bad path is a
    422/400. What each ``add``, ``replace`` and ``copy`` puts in is counted before it is
    built, so a patch that would grow the resource past ``max_bytes`` (``copy`` of the
    document into itself doubles it) is refused with 413 instead of filling memory."""
    if not isinstance(operations, list):
        raise FhirError("A JSON Patch body must be a JSON array of operations")
    budget = max_bytes - len(jsonbytes.dumps(resource))
    patched: Resource = copy.deepcopy(resource)
    for number, operation in enumerate(operations):
        try:
            budget -= _added_bytes(patched, operation)
            if budget < 0:
                raise PayloadTooLarge(f"The patched resource would exceed {max_bytes} bytes",
                                      f"[{number}]")
            patched = jsonpatch.JsonPatch([operation]).apply(patched, in_place=True)
        except jsonpatch.JsonPatchTestFailed as error:
            raise Unprocessable(f"JSON Patch test failed: {error}", f"[{number}]") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
                KeyError, IndexError, AttributeError) as error:
            raise FhirError(f"JSON Patch cannot be applied: {error}", f"[{number}]") from None
    return patched


def _added_bytes(document: Any, operation: Any) -> int:
    """The serialised size of what one JSON Patch operation adds to ``document``."""
    kind = operation.get("op") if isinstance(operation, dict) else None
    if kind in ("add", "replace"):
        return len(jsonbytes.dumps(operation.get("value")))
    if kind == "copy":
        source = operation.get("from")
        return len(jsonbytes.dumps(jsonpointer.resolve_pointer(document, source)))
    return 0


@dataclass(slots=True)
class Slot:
    """Where a selected value lives: ``parent[key]`` or ``parent[key][index]``."""

    parent: Resource
    key: str
    index: int | None

    def get(self) -> Any:
        value = self.parent[self.key]
        return value if self.index is None else value[self.index]


class FhirPathPatch:
    """Applies a FHIRPath Patch Parameters resource."""

    def __init__(self, table: StructureTable | None = None) -> None:
        self.table = table or r4_table()

    def apply(self, resource: Resource, parameters: Resource) -> Resource:
        if parameters.get("resourceType") != "Parameters":
            raise FhirError("A FHIRPath Patch body must be a Parameters resource")
        result = copy.deepcopy(resource)
        for number, param in enumerate(parameters.get("parameter") or []):
            where = f"Parameters.parameter[{number}]"
            if param.get("name") != "operation":
                raise FhirError("Each parameter of a FHIRPath Patch must be an 'operation'", where)
            self._operation(result, _parts(param, where), where)
        return result

    def _operation(self, resource: Resource, parts: dict[str, Any], where: str) -> None:
        kind, path = parts.get("type"), parts.get("path")
        if not isinstance(path, str):
            raise FhirError("The operation has no path", f"{where}.part")
        slots = self._select(resource, path, where)
        if kind == "add":
            target = _one(slots, path, where).get()
            name = parts.get("name")
            if not isinstance(target, dict) or not isinstance(name, str):
                raise FhirError("add needs a path to an element and a name", where)
            value = _value(parts, where)
            if self._repeats(resource, path, name):
                target.setdefault(name, []).append(value)
            else:
                target[name] = value
        elif kind == "insert":
            items = self._list(resource, path, where)
            index = parts.get("index")
            if not isinstance(index, int) or not 0 <= index <= len(items):
                raise FhirError(f"insert: index {index} is not valid for {path}", where)
            items.insert(index, _value(parts, where))
        elif kind == "delete":
            if slots:
                _remove(_one(slots, path, where))
        elif kind == "replace":
            slot = _one(slots, path, where)
            _put(slot, _value(parts, where))
        elif kind == "move":
            items = self._list(resource, path, where)
            source, dest = parts.get("source"), parts.get("destination")
            if not all(isinstance(i, int) and 0 <= i < len(items) for i in (source, dest)):
                raise FhirError(f"move: source {source} / destination {dest} are not valid "
                                f"for {path}", where)
            items.insert(dest, items.pop(source))  # type: ignore[arg-type]
        else:
            raise FhirError(f"Unknown FHIRPath Patch operation type {kind!r}", where)

    def _list(self, resource: Resource, path: str, where: str) -> list[Any]:
        """The list a path ending in a repeating element's name stands for (made if absent)."""
        parent_path, _, name = path.rpartition(".")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or "." not in path:
            raise FhirError(f"The path {path!r} must end with an element name", where)
        parent = (_one(self._select(resource, parent_path, where), parent_path, where).get()
                  if "." in parent_path else resource)
        items = parent.setdefault(name, []) if isinstance(parent, dict) else None
        if not isinstance(items, list):
            raise FhirError(f"The path {path!r} is not a repeating element", where)
        return items

    def _select(self, resource: Resource, path: str, where: str) -> list[Slot]:
        """Resolve a path to the slots it selects (in document order)."""
        head = path.partition(".")[0]
        if head != resource.get("resourceType"):
            raise FhirError(f"The path {path!r} must start with {resource.get('resourceType')}",
                            where)
        if path == head:
            return [Slot({head: resource}, head, None)]
        current: list[Any] = [resource]
        slots: list[Slot] = []
        position = len(head)
        while position < len(path):
            match = STEP.match(path, position)
            if not match:
                raise FhirError(f"Unsupported FHIRPath in patch path {path!r} at "
                                f"{path[position:]!r}; supported: names, [n], first(), "
                                "last(), where(child = 'text')", where)
            position = match.end()
            if match["name"]:
                slots = _children(current, match["name"])
                if match["index"] is not None:
                    index = int(match["index"])
                    slots = slots[index:index + 1]
            elif match["func"]:
                slots = slots[:1] if match["func"] == "first" else slots[-1:]
            else:
                slots = [s for s in slots if isinstance(s.get(), dict)
                         and s.get().get(match["field"]) == match["literal"]]
            current = [s.get() for s in slots]
        return slots

    def _repeats(self, resource: Resource, path: str, name: str) -> bool:
        """Whether ``name`` repeats in the element the path selects (from the R4 table)."""
        type_key = resource["resourceType"]
        for step in re.findall(r"\.([A-Za-z][A-Za-z0-9_]*)", path):
            rules = self.table.rules(type_key)
            element = rules.elements.get(step) if rules else None
            if element is None:
                return False
            type_key = element.type
        rules = self.table.rules(type_key)
        element = rules.elements.get(name) if rules else None
        return element is not None and element.max != 1


def _children(values: list[Any], name: str) -> list[Slot]:
    slots = []
    for value in values:
        if isinstance(value, dict) and name in value:
            child = value[name]
            if isinstance(child, list):
                slots += [Slot(value, name, i) for i in range(len(child))]
            else:
                slots.append(Slot(value, name, None))
    return slots


def _one(slots: list[Slot], path: str, where: str) -> Slot:
    if len(slots) != 1:
        raise Unprocessable(f"The path {path!r} selects {len(slots)} elements; "
                            "exactly one is needed", where)
    return slots[0]


def _put(slot: Slot, value: Any) -> None:
    if slot.index is None:
        slot.parent[slot.key] = value
    else:
        slot.parent[slot.key][slot.index] = value


def _remove(slot: Slot) -> None:
    if slot.index is None:
        del slot.parent[slot.key]
        return
    items = slot.parent[slot.key]
    del items[slot.index]
    if not items:
        del slot.parent[slot.key]


def _parts(param: Resource, where: str) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for part in param.get("part") or []:
        name = part.get("name")
        values = [v for k, v in part.items() if k.startswith("value")]
        if name == "value":
            parts["value"] = values[0] if values else {
                p["name"]: next(v for k, v in p.items() if k.startswith("value"))
                for p in part.get("part") or []}
        elif values:
            parts[name] = values[0]
        else:
            raise FhirError(f"The operation part {name!r} has no value", where)
    return parts


def _value(parts: dict[str, Any], where: str) -> Any:
    if "value" not in parts:
        raise FhirError("The operation needs a value", where)
    return copy.deepcopy(parts["value"])
