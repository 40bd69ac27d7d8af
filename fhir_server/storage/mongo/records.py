"""The server's own records (clients, keys, replay guards, export jobs) in MongoDB: one
document per (kind, key) in ``records``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import DuplicateKeyError

from fhir_server.storage.mongo.layout import RECORDS, Database
from fhir_server.storage.port import Record, RecordChange, after_prefix


def _live(now: int) -> dict[str, Any]:
    return {"$or": [{"expires": None}, {"expires": {"$gt": now}}]}


async def put_record(db: Database, now: int, kind: str, key: str, value: bytes,
                     expires_ms: int | None, only_new: bool) -> bool:
    """Keep a record; with ``only_new`` only if no live one holds the key (a unique
    ``_id`` makes the guard atomic across workers)."""
    records = db[RECORDS]
    await records.delete_many({"kind": kind, "expires": {"$ne": None, "$lte": now}})
    document = {"_id": f"{kind}\x00{key}", "kind": kind, "key": key, "value": value,
                "expires": expires_ms}
    if not only_new:
        await records.replace_one({"_id": document["_id"]}, document, upsert=True)
        return True
    try:
        await records.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


async def get_record(db: Database, now: int, kind: str, key: str) -> bytes | None:
    found = await db[RECORDS].find_one({"_id": f"{kind}\x00{key}", **_live(now)})
    return bytes(found["value"]) if found else None


async def list_records(db: Database, now: int, kind: str, prefix: str) -> list[Record]:
    return [Record(d["key"], bytes(d["value"]), d["expires"])
            async for d in _listed(db, now, kind, prefix, {"_id": 0})]


async def record_values(db: Database, now: int, kind: str, prefix: str) -> list[bytes]:
    return [bytes(d["value"]) async for d in _listed(db, now, kind, prefix,
                                                     {"_id": 0, "value": 1})]


def _listed(db: Database, now: int, kind: str, prefix: str,
            fields: dict[str, int]) -> Any:
    keys = {"$gte": prefix, "$lt": after_prefix(prefix)}
    return db[RECORDS].find({"kind": kind, "key": keys, **_live(now)}, fields).sort("key", 1)


def record_changes(changes: Sequence[RecordChange]) -> list[ReplaceOne[Any] | DeleteOne]:
    """The bulk operations that keep (without expiry) or remove records."""
    return [ReplaceOne({"_id": f"{c.kind}\x00{c.key}"}, {
        "_id": f"{c.kind}\x00{c.key}", "kind": c.kind, "key": c.key, "value": c.value,
        "expires": None}, upsert=True) if c.value is not None
        else DeleteOne({"_id": f"{c.kind}\x00{c.key}"}) for c in changes]


async def delete_record(db: Database, kind: str, key: str) -> bool:
    return (await db[RECORDS].delete_one({"_id": f"{kind}\x00{key}"})).deleted_count > 0
