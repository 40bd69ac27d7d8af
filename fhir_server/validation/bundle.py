"""A Bundle's own rules (https://hl7.org/fhir/R4/bundle.html#invariants): what each type
of Bundle must and must not hold (bdl-1 … bdl-5, bdl-9 … bdl-12), and its fullUrls
(absolute, not version-specific, unique, matching the entry's id: bdl-7, bdl-8).

Called by the structure validator for every Bundle (nested ones too): these are rules of
FHIR itself. The entries' resources are checked as resources there and by the alliance rules
(``check.py``); this module judges only how the Bundle holds them.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.outcome import Issue
from fhir_server.types import Resource

SEARCHES = frozenset({"searchset"})
WITH_REQUEST = frozenset({"batch", "transaction", "history"})
WITH_RESPONSE = frozenset({"batch-response", "transaction-response", "history"})
FIRST = {"document": "Composition", "message": "MessageHeader"}
ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
RESTFUL = re.compile(r"(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                     r"(?P<version>/_history/[^/]+)?")


def bundle_rules(bundle: Resource, path: str = "Bundle") -> list[Issue]:
    """The issues of a Bundle's own invariants and fullUrls (``path``: where it is)."""
    issues: list[Issue] = []
    kind = bundle.get("type")
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    if "total" in bundle and kind not in ("searchset", "history"):
        issues.append(_broken("bdl-1", "total only when a search or history", f"{path}.total"))
    if kind in FIRST:
        _first(kind, entries, path, issues)
    if kind == "document":
        identifier = bundle.get("identifier") or {}
        if not (identifier.get("system") and identifier.get("value")):
            issues.append(_broken("bdl-9", "a document must have an identifier with a system "
                                  "and a value", f"{path}.identifier"))
        if "timestamp" not in bundle:
            issues.append(_broken("bdl-10", "a document must have a date", f"{path}.timestamp"))
    seen: dict[tuple[str, Any], int] = {}
    for index, entry in enumerate(entries):
        _entry(kind, entry, f"{path}.entry[{index}]", issues)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and kind != "history":
            version = ((entry.get("resource") or {}).get("meta") or {}).get("versionId")
            if (full_url, version) in seen:
                issues.append(_broken("bdl-7", f"fullUrl {full_url!r} must be unique in a "
                                      "Bundle", f"{path}.entry[{index}].fullUrl"))
            seen[full_url, version] = index
    return issues


def _entry(kind: Any, entry: dict[str, Any], path: str, issues: list[Issue]) -> None:
    if "search" in entry and kind not in SEARCHES:
        issues.append(_broken("bdl-2", "entry.search only when a search", f"{path}.search"))
    if ("request" in entry) != (kind in WITH_REQUEST):
        issues.append(_broken("bdl-3", "entry.request is mandatory for batch, transaction "
                              "and history, and otherwise prohibited", f"{path}.request"))
    if ("response" in entry) != (kind in WITH_RESPONSE):
        issues.append(_broken("bdl-4", "entry.response is mandatory for batch-response, "
                              "transaction-response and history, and otherwise prohibited",
                              f"{path}.response"))
    if not any(k in entry for k in ("resource", "request", "response")):
        issues.append(_broken("bdl-5", "an entry must have a resource or a request or a "
                              "response", path))
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str):
        _full_url(full_url, entry.get("resource"), f"{path}.fullUrl", issues)


def _full_url(full_url: str, resource: Any, path: str, issues: list[Issue]) -> None:
    if not ABSOLUTE.fullmatch(full_url):
        issues.append(Issue("value", f"fullUrl {full_url!r} must be an absolute URL "
                            "(http…, urn:uuid:…)", path))
        return
    restful = RESTFUL.fullmatch(full_url)
    if restful is None:
        return
    if restful["version"]:
        issues.append(_broken("bdl-8", "fullUrl cannot be a version-specific reference",
                              path))
    if isinstance(resource, dict) and full_url.startswith(("http://", "https://")) and (
            resource.get("resourceType") != restful["type"]
            or resource.get("id") != restful["id"]):
        issues.append(Issue("invalid", f"fullUrl {full_url!r} names "
                            f"{restful['type']}/{restful['id']}, but the entry holds "
                            f"{resource.get('resourceType')}/{resource.get('id')}", path))


def _first(kind: str, entries: list[dict[str, Any]], path: str, issues: list[Issue]) -> None:
    first = (entries[0].get("resource") or {}) if entries else {}
    if first.get("resourceType") != FIRST[kind]:
        key = "bdl-11" if kind == "document" else "bdl-12"
        issues.append(_broken(key, f"a {kind} must have a {FIRST[kind]} as the first "
                              "resource", f"{path}.entry[0]"))


def _broken(key: str, rule: str, path: str) -> Issue:
    return Issue("invariant", f"{key}: {rule}", path)
