"""``alliance-fhir migrate --from URL --to URL``: copy a store into an empty one of either
kind (SQLite, MongoDB): every version of every resource as it was (id, version number,
time, method, stored bytes), oldest first, with index rows built from the source's search
parameters; the audit chain, which verifies on the target; registered clients, the server's
signing key and the audit anchor. The copy is proven at the end by the number of versions
of each type and a SHA-256 over every version, computed on both sides."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.audit import chain
from fhir_server.auth import clients, server_key
from fhir_server.core.references import local_references
from fhir_server.core.service import FhirService
from fhir_server.jsonbytes import loads
from fhir_server.storage.port import (
    CommitOptions,
    HistoryEntry,
    HistoryQuery,
    Storage,
    Write,
    WriteKind,
)

BATCH = 500  # versions per commit
RECORD_KINDS = (clients.KIND, server_key.KIND, chain.ANCHOR[0])  # (not jobs, not guards)
KINDS: dict[str, WriteKind] = {"POST": "create", "PUT": "update", "DELETE": "delete"}
AS_THEY_WERE = CommitOptions(check_references=False, allow_referenced_delete=True)
Progress = Callable[[int, int], None]  # (versions copied, versions in all)


class MigrationError(Exception):
    """The copy cannot start, or does not match its source."""


@dataclass
class Tally:
    """What a store holds, to compare two: versions per type and a digest of them all."""

    versions: Counter[str] = field(default_factory=Counter)
    digest: Any = field(default_factory=hashlib.sha256)  # (hashlib's type is private)

    def add(self, entry: HistoryEntry) -> None:
        version = entry.version
        self.versions[version.resource_type] += 1
        self.digest.update(orjson.dumps([version.resource_type, version.id, version.version,
                                         version.last_updated_ms, entry.method,
                                         len(version.content)]) + version.content)


@dataclass(frozen=True)
class Report:
    versions: dict[str, int]
    sha256: str
    records: int
    links: int


async def migrate(source: FhirService, target: Storage,
                  progress: Progress | None = None) -> Report:
    """Copy ``source`` (opened storage, its search parameters learnt) into ``target``
    (opened, empty)."""
    if await target.versions(0, 1):
        raise MigrationError("the target already holds resources: migrate into an empty one")
    target.use_indexer(source.stored_rows)
    records = await _copy_records(source.storage, target)
    links = {(link.resource_type, link.id): link async for link in chain.links(source.storage)}
    anchor = await chain.anchor(source.storage)
    if anchor[0]:
        await target.continue_chain(*anchor)
    total = await _count(source.storage)
    copied, after = Tally(), 0
    while batch := await source.storage.versions(after, BATCH):
        for part in _one_version_each(batch):
            await target.commit([_write(source, entry, (entry.version.resource_type,
                                                        entry.version.id) in links)
                                 for entry in part], AS_THEY_WERE)
        for entry in batch:
            copied.add(entry)
        after = batch[-1].seq
        if progress is not None:
            progress(sum(copied.versions.values()), total)
    found = await tally(target)
    if found.versions != copied.versions or found.digest.digest() != copied.digest.digest():
        raise MigrationError(f"the copy does not match: {dict(copied.versions)} versions "
                             f"read, {dict(found.versions)} found on the target")
    verdict = await chain.verify(target)
    if verdict.broken:
        raise MigrationError(f"the audit chain does not verify on the target: {verdict.broken}")
    return Report(dict(copied.versions), copied.digest.hexdigest(), records, verdict.checked)


def _one_version_each(batch: list[HistoryEntry]) -> list[list[HistoryEntry]]:
    """The batch in order, cut so that no part holds two versions of one resource (a
    commit writes each resource once)."""
    parts: list[list[HistoryEntry]] = [[]]
    keys: set[tuple[str, str]] = set()
    for entry in batch:
        key = (entry.version.resource_type, entry.version.id)
        if key in keys:
            parts.append([])
            keys.clear()
        parts[-1].append(entry)
        keys.add(key)
    return parts


def _write(source: FhirService, entry: HistoryEntry, linked: bool) -> Write:
    """The write that makes ``entry`` again, as it was."""
    version = entry.version
    content, updated = version.content, version.last_updated_ms
    kind = KINDS[entry.method]
    if kind == "delete":
        return Write("delete", version.resource_type, version.id, updated_ms=updated)
    if linked:  # a link of the audit chain: its hash and place again on the target
        return Write(kind, version.resource_type, version.id, updated_ms=updated,
                     link=lambda *_: content, index_later=True)
    resource = loads(content)
    return Write(kind, version.resource_type, version.id, lambda *_: content,
                 references=local_references(resource, source.registry.is_supported, ""),
                 index=source.stored_rows(content), updated_ms=updated)


async def _copy_records(source: Storage, target: Storage) -> int:
    copied = 0
    for kind in RECORD_KINDS:
        for record in await source.list_records(kind):
            await target.put_record(kind, record.key, record.value, record.expires_ms)
            copied += 1
    return copied


async def _count(storage: Storage) -> int:
    return (await storage.history(HistoryQuery(count=1))).total


async def tally(storage: Storage) -> Tally:
    """Every version of ``storage``, counted and digested in order."""
    found, after = Tally(), 0
    while batch := await storage.versions(after, BATCH):
        for entry in batch:
            found.add(entry)
        after = batch[-1].seq
    return found
