"""De-identified export for statistics (PIPL art. 73: information that cannot identify a
person without extra information). Within one job every id, and every reference to it,
becomes the same keyed hash (HMAC-SHA-256 with the job's secret), so the output still
links up but cannot be linked back without the secret, which is never shown.

Dropped: narrative, names, telecom, photos, free-text notes, the display text of
references, identifier values. Birth dates keep their year; addresses keep their state,
country and GB/T 2260 county code (six digits). Clinical codes, values and dates stay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from fhir_server.types import Resource

DIVISION = "http://alliance-fhir.org/fhir/StructureDefinition/division-code"
DROPPED = frozenset({"name", "telecom", "photo", "note", "text", "_name", "_text"})
KEPT_IN_ADDRESS = ("use", "type", "state", "country")
REFERENCE = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class Pseudonyms:
    """Ids keyed by the job's secret: the same id always gives the same pseudonym."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def of(self, rtype: str, id: str) -> str:
        digest = hmac.new(self.secret, f"{rtype}/{id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def reference(self, reference: str) -> str:
        found = REFERENCE.match(reference)
        if found is None:  # "#contained", urn:uuid:…, canonical URLs: not a stored id
            return reference
        rtype, id = found.groups()
        return f"{rtype}/{self.of(rtype, id)}"


def deidentify(resource: Resource, pseudonyms: Pseudonyms) -> Resource:
    out: Resource = _walk(resource, pseudonyms)
    if isinstance(resource.get("id"), str):
        out["id"] = pseudonyms.of(str(resource.get("resourceType")), resource["id"])
    return out


def _walk(node: Any, pseudonyms: Pseudonyms) -> Any:
    if isinstance(node, list):
        return [_walk(item, pseudonyms) for item in node]
    if not isinstance(node, dict):
        return node
    is_reference = isinstance(node.get("reference"), str) or (
        "identifier" in node and "code" not in node and "system" not in node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED and not (key == "text" and isinstance(value, str)):
            continue  # (a CodeableConcept's text is clinical: kept; a narrative is not)
        if key == "display" and is_reference:
            continue
        if key in ("identifier", "valueIdentifier"):
            out[key] = [_identifier(v) for v in value] if isinstance(value, list) \
                else _identifier(value)
        elif key in ("address", "valueAddress"):
            out[key] = [_area(v) for v in value] if isinstance(value, list) else _area(value)
        elif key == "reference" and isinstance(value, str):
            out[key] = pseudonyms.reference(value)
        elif key == "birthDate" and isinstance(value, str):
            out[key] = value[:4]
        elif key == "contained" and isinstance(value, list):
            out[key] = [_walk(v, pseudonyms) for v in value]
        else:
            out[key] = _walk(value, pseudonyms)
    return out


def _identifier(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k not in ("value", "_value", "assigner")}


def _area(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    out = {k: value[k] for k in KEPT_IN_ADDRESS if k in value}
    codes = [e.get("valueCode") for e in value.get("extension") or []
             if isinstance(e, dict) and e.get("url") == DIVISION]
    if codes and isinstance(codes[0], str):
        out["extension"] = [{"url": DIVISION, "valueCode": codes[0][:6]}]
    return out
