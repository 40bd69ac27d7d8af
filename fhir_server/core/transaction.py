"""Transaction Bundles: the atomic write part (https://hl7.org/fhir/R4/http.html#transaction).

Processing order as the spec gives it: DELETE, then POST, then PUT/PATCH (GET/HEAD entries
are read after the commit by the caller). Server ids are assigned to POST entries first, and
every ``fullUrl`` (``urn:uuid:…``, ``urn:oid:…`` or absolute) is rewritten to ``Type/id`` in
every reference of every entry; then all writes are committed at once, or none.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir_server import jsonbytes
from fhir_server.core.conditional import Resolution, attempts
from fhir_server.core.errors import FhirError, PayloadTooLarge
from fhir_server.core.patch import JSON_PATCH, Patcher, patcher
from fhir_server.core.references import rewrite_references
from fhir_server.core.service import FhirService, Prepared
from fhir_server.core.slices import Slices
from fhir_server.core.versioning import parse_etag
from fhir_server.storage.port import CommitOptions, StoredVersion
from fhir_server.types import Resource

WRITE_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@dataclass(slots=True, eq=False)
class Entry:
    """One Bundle.entry as a request (hashed by identity)."""

    index: int
    method: str
    url: str  # relative to the base, without leading slash
    resource: Resource | None
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None = None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def parts(self) -> list[str]:
        return [p for p in urlsplit(self.url).path.split("/") if p]

    @property
    def query(self) -> str:
        return urlsplit(self.url).query


def parse_bundle(bundle: Any, allowed: tuple[str, ...] = ("transaction", "batch"),
                 max_entries: int = 10_000) -> str:
    """Check a Bundle's outline and return its type."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError("The body must be a Bundle", "Bundle")
    kind = bundle.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise FhirError(f"Bundle.type must be one of {', '.join(allowed)}, not {kind!r}",
                        "Bundle.type")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError("Bundle.entry must be an array", "Bundle.entry")
    if len(entries) > max_entries:
        raise PayloadTooLarge(f"The Bundle has {len(entries):,} entries; at most {max_entries:,}"
                              " are accepted (FHIR_MAX_BUNDLE_ENTRIES)", "Bundle.entry")
    return kind


def parse_entry(raw: Any, index: int, base_url: str) -> Entry:
    """One entry's request; errors name ``Bundle.entry[i].request…``."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise FhirError("Each entry needs a request", f"{where}.request")
    request = raw["request"]
    method = request.get("method")
    if method not in METHODS:
        raise FhirError(f"Unknown request.method {method!r}", f"{where}.request.method")
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise FhirError("request.url is required", f"{where}.request.url")
    url = url.removeprefix(base_url).strip("/")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise FhirError("entry.resource must be an object", f"{where}.resource")
    if method in ("POST", "PUT", "PATCH") and resource is None:
        raise FhirError(f"A {method} entry needs a resource", f"{where}.resource")
    tag = request.get("ifMatch")
    condition = request.get("ifNoneExist")
    return Entry(index, method, url, resource, raw.get("fullUrl"),
                 parse_etag(tag) if isinstance(tag, str) else None,
                 condition if isinstance(condition, str) and condition else None)


def entry_patcher(entry: Entry, max_bytes: int) -> Patcher:
    """A PATCH entry's resource: a Binary holding JSON Patch, or FHIRPath Patch Parameters."""
    resource = entry.resource or {}
    if resource.get("resourceType") == "Binary":
        try:
            data = base64.b64decode(resource.get("data", ""), validate=True)
        except ValueError:
            raise FhirError("Binary.data is not base64", f"{entry.where}.resource.data") from None
        return patcher(resource.get("contentType") or JSON_PATCH, data, max_bytes)
    return patcher("application/fhir+json", jsonbytes.dumps(resource), max_bytes)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one write entry did: its status and the version it left (None: nothing)."""

    status: int
    stored: StoredVersion | None


class TransactionPlanner:
    """Turns the write entries of a transaction into one atomic commit.

    Conditional entries are resolved first, against what is stored: ``ifNoneExist`` on
    POST, ``[type]?criteria`` urls on PUT, PATCH and DELETE, and conditional references
    (``Patient?identifier=…``) inside resources. Their searches are conditions of the
    commit; if another writer changed what they find, the entries are planned again from
    their original content (core/conditional.py).
    """

    def __init__(self, service: FhirService) -> None:
        self.service = service

    async def commit(self, entries: list[Entry],
                     options: CommitOptions | None = None) -> dict[int, Outcome]:
        writes = [e for e in entries if e.method in WRITE_ORDER]
        originals: dict[Entry, bytes] = {}

        async def attempt(found: Resolution) -> dict[int, Outcome]:
            for entry, content in originals.items():  # a former attempt rewrote them
                entry.resource = jsonbytes.loads(content)
            return await self._commit(writes, options, found, originals)
        return await attempts(self.service, attempt)

    async def _commit(self, writes: list[Entry], options: CommitOptions | None,
                      found: Resolution, originals: dict[Entry, bytes]) -> dict[int, Outcome]:
        targets: dict[Entry, list[tuple[str, str]]] = {}
        matched: set[Entry] = set()
        slices = Slices(len(writes))  # many entries: other requests answered in between
        for entry in writes:
            targets[entry], existing = await self._targets(entry, found)
            if existing:
                matched.add(entry)
            await slices.pause()
        mapping = {e.full_url: "/".join(t[0]) for e, t in targets.items() if e.full_url and t}
        for entry in writes:
            if entry.resource is not None and entry.method != "PATCH":
                await found.resolve_references(entry.resource, entry.where, mapping)
                await slices.pause()
        if found.held and not originals:  # kept before anything is rewritten, for a retry
            originals.update((e, jsonbytes.dumps(e.resource)) for e in writes if e.resource)
        for entry in writes:
            if entry.resource is not None and entry.method != "PATCH":
                rewrite_references(entry.resource, mapping)
                await slices.pause()
        self._refuse_duplicates({e: t for e, t in targets.items() if e not in matched})
        prepared: list[tuple[Entry, Prepared]] = []
        for entry in sorted(writes, key=lambda e: WRITE_ORDER[e.method]):
            if entry not in matched:
                prepared += [(entry, p) for p in await self._prepare(entry, targets[entry])]
                await slices.pause()
        where = {(p.write.resource_type, p.write.id): f"{e.where}.resource"
                 if p.write.kind != "delete" else e.where for e, p in prepared}
        results = await self.service.commit([p for _, p in prepared], options, where,
                                            found.held)
        outcomes: dict[int, Outcome] = {}
        for (entry, _), stored in zip(prepared, results, strict=True):
            if entry.index not in outcomes:
                outcomes[entry.index] = Outcome(_status(entry, stored), stored)
        for entry in writes:
            if entry in matched:
                stored = await self.service.read(*targets[entry][0])
                outcomes[entry.index] = Outcome(200, stored)
            elif entry.index not in outcomes:  # a conditional delete that matched nothing
                outcomes[entry.index] = Outcome(204, None)
        return outcomes

    async def _targets(self, entry: Entry,
                       found: Resolution) -> tuple[list[tuple[str, str]], bool]:
        """The (type, id) an entry writes, and whether a conditional create found one."""
        parts, where = entry.parts, f"{entry.where}.request.url"
        if entry.method == "POST":
            if len(parts) != 1 or entry.query:
                raise FhirError("A POST entry's url must be a resource type", where)
            if entry.if_none_exist:
                existing = await found.create_target(parts[0], entry.if_none_exist)
                if existing:
                    return [(parts[0], existing)], True
            return [(parts[0], self.service.new_id())], False
        if entry.query:
            if len(parts) != 1:
                raise FhirError(f"A conditional {entry.method} url is [type]?criteria", where)
            if entry.method == "DELETE":
                ids = await found.delete_targets(parts[0], entry.query)
                return [(parts[0], i) for i in ids], False
            body_id = (entry.resource or {}).get("id") if entry.method == "PUT" else None
            rid = await found.single_target(parts[0], entry.query, entry.method,
                                                      body_id)
            return [(parts[0], rid)], False
        if len(parts) != 2:
            raise FhirError(f"A {entry.method} entry's url must be [type]/[id]", where)
        return [(parts[0], parts[1])], False

    @staticmethod
    def _refuse_duplicates(targets: dict[Entry, list[tuple[str, str]]]) -> None:
        seen: dict[tuple[str, str], Entry] = {}
        for entry, found in targets.items():
            for target in found:
                if target in seen:
                    raise FhirError(f"{target[0]}/{target[1]} appears in more than one entry "
                                    f"({seen[target].where} and {entry.where})", entry.where)
                seen[target] = entry

    async def _prepare(self, entry: Entry, targets: list[tuple[str, str]]) -> list[Prepared]:
        service, prefix = self.service, f"{entry.where}.resource"
        if entry.method == "DELETE":
            return [service.prepare_delete(t, i, entry.if_match) for t, i in targets]
        [(rtype, rid)] = targets
        service.check_type(rtype)
        if entry.method == "PATCH":
            patch = entry_patcher(entry, service.settings.max_body_bytes)
            return [await service.prepare_patch(rtype, rid, patch, entry.if_match, prefix)]
        resource = entry.resource or {}
        if resource.get("resourceType") != rtype:
            raise FhirError(f"The resource is a {resource.get('resourceType')} but the url "
                            f"names {rtype}", f"{prefix}.resourceType")
        if entry.method == "POST":
            return [service.prepare_create(rtype, resource, prefix, id=rid)]
        resource.setdefault("id", rid)
        return [service.prepare_update(rtype, rid, resource, entry.if_match, prefix)]


def _status(entry: Entry, stored: StoredVersion) -> int:
    if entry.method == "DELETE":
        return 204
    if entry.method == "POST" or stored.created:
        return 201
    return 200
