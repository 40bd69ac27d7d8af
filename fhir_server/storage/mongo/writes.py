"""One commit on MongoDB, inside a multi-document transaction: the checks and documents of
each write, as the SQLite adapter's writer makes them (same port, same rules).

Sequence numbers come from one counter document that every commit updates, so concurrent
commits conflict on it and MongoDB retries the later one: commits are serialised (what a
conditional write's search and a unique identifier's check rely on), at the price of one
hot document (docs/scaling.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo import InsertOne, ReplaceOne, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.storage.mongo.layout import (
    CHAIN,
    COUNTERS,
    HISTORY,
    RECORDS,
    RESOURCES,
    Database,
    binary,
    index_entries,
)
from fhir_server.storage.mongo.records import record_changes
from fhir_server.storage.port import (
    AlreadyExists,
    CommitOptions,
    DuplicateIdentifier,
    IntegrityError,
    RecordChange,
    Reference,
    ResourceTooLarge,
    StoredVersion,
    VersionConflict,
    Write,
)

METHODS = {"create": "POST", "update": "PUT", "delete": "DELETE"}
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's BSON document limit
NUMBERS = "numbers"  # the counter document


async def take_numbers(db: Database, session: AsyncClientSession, writes: int,
                       resources: int, data: bool) -> dict[str, Any]:
    """Reserve sequence numbers for ``writes`` versions and resource numbers for
    ``resources`` new resources, and move the data mark when ``data``: one update of the
    one counter document (its fields after the update: ``seq``, ``rid``, ``data``, and the
    audit chain's head, ``chain`` and ``hash``)."""
    found = await db[COUNTERS].find_one_and_update(
        {"_id": NUMBERS}, {"$inc": {"seq": writes, "rid": resources, "data": int(data)}},
        upsert=True, return_document=ReturnDocument.AFTER, session=session)
    assert found is not None  # (upserted)
    return found


@dataclass
class Commit:
    """The state of one commit as its writes are applied in order; their documents are
    gathered and written with one bulk operation per collection (``flush``)."""

    db: Database
    session: AsyncClientSession
    now: int
    seq: int  # the last sequence number used
    rid: int  # the last resource number used
    mark: int  # the data mark after this commit
    current: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" -> document
    existing: frozenset[str] = frozenset()  # the keys stored before this commit
    head: tuple[int, str] = (0, "")  # the audit chain's (sequence, hash) so far
    history: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[RecordChange] = field(default_factory=list)

    def apply(self, write: Write) -> StoredVersion:
        key = f"{write.resource_type}/{write.id}"
        self.records += write.records
        row = self.current.get(key)
        version, deleted = (row["version"], row["deleted"]) if row else (0, True)
        if write.if_match is not None and (deleted or version != write.if_match):
            raise VersionConflict(write.resource_type, write.id, write.if_match,
                                  None if deleted else version)
        if write.kind == "create" and row is not None:
            raise AlreadyExists(write.resource_type, write.id)
        if write.kind == "delete" and deleted:
            return StoredVersion(write.resource_type, write.id, version,
                                 row["updated"] if row else 0, True, b"")
        old = bytes(row["content"]) if row and not deleted else None
        if old is not None and write.skip_unchanged and write.render is not None \
                and write.render(version, row["updated"]) == old:  # type: ignore[index]
            return StoredVersion(write.resource_type, write.id, version,
                                 row["updated"], False, old)  # type: ignore[index]
        now = self.now if write.updated_ms is None else write.updated_ms
        content = self._content(write, version + 1, now)
        self.seq += 1
        self.history.append({"_id": self.seq, "type": write.resource_type, "id": write.id,
                             "version": version + 1, "updated": now,
                             "method": METHODS[write.kind], "content": binary(content)})
        if row is None:
            self.rid += 1
        document = {"_id": key, "type": write.resource_type, "id": write.id,
                    "rid": row["rid"] if row else self.rid, "seq": self.seq,
                    "version": version + 1, "updated": now, "deleted": content is None,
                    "content": binary(content),
                    "refs": [f"{r.resource_type}/{r.id}" for r in write.references],
                    "idx": {} if content is None or write.index_later
                    else index_entries(write.index)}
        if content is not None and write.index_later:
            document["later"] = True
        if content is not None and len(content) > MAX_DOCUMENT_BYTES // 2:
            size = len(bson.encode(document))  # (only big ones: encoding costs)
            if size > MAX_DOCUMENT_BYTES:
                raise ResourceTooLarge(write.resource_type, write.id, size, MAX_DOCUMENT_BYTES)
        self.current[key] = self.changed[key] = document
        return StoredVersion(write.resource_type, write.id, version + 1, now,
                             content is None, content or b"",
                             created=deleted and content is not None)

    def _content(self, write: Write, version: int, now: int) -> bytes | None:
        if write.link is not None:
            return self._link(write, version, now)
        if write.kind == "delete":
            return None
        assert write.render is not None
        return write.render(version, now)

    def _link(self, write: Write, version: int, now: int) -> bytes:
        """The next link of the audit chain: rendered with its place and the previous
        link's hash, its own hash kept."""
        assert write.link is not None
        seq, previous = self.head
        content = write.link(version, now, seq + 1, previous)
        self.head = (seq + 1, hashlib.sha256(content).hexdigest())
        self.links.append({"_id": self.head[0], "type": write.resource_type, "id": write.id,
                           "hash": self.head[1]})
        return content

    async def flush(self) -> None:
        """Write what the commit gathered, and the chain's new head."""
        session = self.session
        if self.history:
            await self.db[HISTORY].insert_many(self.history, ordered=False, session=session)
        if self.changed:  # (an insert costs less than an upsert: no lookup first)
            await self.db[RESOURCES].bulk_write(
                [ReplaceOne({"_id": key}, document) if key in self.existing
                 else InsertOne(document) for key, document in self.changed.items()],
                ordered=False, session=session)
        if self.records:
            await self.db[RECORDS].bulk_write(record_changes(self.records), ordered=True,
                                              session=session)
        if self.links:
            await self.db[CHAIN].insert_many(self.links, session=session)
            await self.db[COUNTERS].update_one(
                {"_id": NUMBERS}, {"$set": {"chain": self.head[0], "hash": self.head[1]}},
                session=session)

    async def check_unique(self, writes: Sequence[Write]) -> None:
        """DuplicateIdentifier when a written resource shares a unique identifier with
        another current resource of its type."""
        for write in writes:
            for system, value in write.unique if write.kind != "delete" else ():
                holder = await self.db[RESOURCES].find_one(
                    {"idx.token.code": value, "type": write.resource_type, "deleted": False,
                     "_id": {"$ne": f"{write.resource_type}/{write.id}"},
                     "idx.token": {"$elemMatch": {"k": f"{write.resource_type}.identifier",
                                                  "code": value, "system": system}}},
                    {"_id": 1}, session=self.session)
                if holder is not None:
                    raise DuplicateIdentifier(write.resource_type, write.id, system, value,
                                              holder["_id"])

    async def check_integrity(self, writes: Sequence[Write], options: CommitOptions) -> None:
        dangling: list[Reference] = []
        if options.check_references:
            targets: dict[str, Reference] = {}
            for write in writes:
                for ref in write.references:
                    targets.setdefault(f"{ref.resource_type}/{ref.id}", ref)
            present = {d["_id"] async for d in self.db[RESOURCES].find(
                {"_id": {"$in": list(targets)}, "deleted": False}, {"_id": 1},
                session=self.session)}
            dangling = [ref for key, ref in targets.items() if key not in present]
        referenced = []
        for write in writes if not options.allow_referenced_delete else ():
            if write.kind != "delete":
                continue
            referrers = [d["_id"] async for d in self.db[RESOURCES].find(
                {"refs": f"{write.resource_type}/{write.id}", "deleted": False},
                {"_id": 1}, session=self.session).limit(10)]
            if referrers:
                referenced.append((write.resource_type, write.id, referrers))
        if dangling or referenced:
            raise IntegrityError(dangling, referenced)
