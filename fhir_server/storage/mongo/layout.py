"""How the MongoDB adapter lays out its data: collections, their indexes, and the
documents it stores.

``resources`` holds one document per resource (its current version, ``_id`` "Type/id"):
the stored bytes as BSON binary (served as stored), the version, the outgoing references
(``refs``, "Type/id" strings, for referential integrity) and the search index entries
derived from the one SearchParameter registry, one array per index table (``idx.token``:
``{"k": key, "system": ..., "code": ...}``; the columns of ``search.plan.TABLES``), each
indexed on its most selective column (``DRIVERS``). ``history`` holds every version by its
sequence number. ``counters`` hands out sequence numbers, resource numbers (``rid``:
storage order, the paging key), the data mark and the audit chain's head; ``records`` the
server's own records; ``audit_chain`` the chain's links.
"""

from __future__ import annotations

from typing import Any

from bson import Binary
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.search.extract import IndexRows
from fhir_server.search.plan import TABLES

Database = AsyncDatabase[dict[str, Any]]
RESOURCES, HISTORY, COUNTERS = "resources", "history", "counters"
RECORDS, CHAIN, SETTINGS = "records", "audit_chain", "settings"
# the column of each index table's entries that its index keeps: the most selective one
# (a code, a name, a referenced id, a date's start, a value), across every parameter
DRIVERS = {"token": "code", "string": "norm", "reference": "target_id", "date": "low",
           "number": "value", "quantity": "value", "uri": "uri", "composite": "code"}

INDEXES: dict[str, list[IndexModel]] = {
    RESOURCES: [
        # (not unique: a sharded collection allows unique indexes only on its shard key;
        # resource and sequence numbers are unique by the counter, in the transaction)
        IndexModel([("rid", ASCENDING)], name="by_rid"),
        IndexModel([("type", ASCENDING), ("rid", ASCENDING)], name="by_type"),
        IndexModel([("refs", ASCENDING)], name="referrers"),
        IndexModel([("later", ASCENDING)], name="index_later", sparse=True),
        *(IndexModel([(f"idx.{table}.{column}", ASCENDING)], name=f"idx_{table}")
          for table, column in DRIVERS.items()),
    ],
    HISTORY: [
        IndexModel([("id", ASCENDING), ("type", ASCENDING), ("version", ASCENDING)],
                   name="by_version"),
        IndexModel([("type", ASCENDING), ("_id", ASCENDING)], name="by_type"),
    ],
    RECORDS: [IndexModel([("kind", ASCENDING), ("key", ASCENDING)], name="by_kind")],
}


def index_entries(rows: IndexRows | None) -> dict[str, list[dict[str, Any]]]:
    """The ``idx`` field of a resource document from its index rows."""
    return {table: [{"k": key, **dict(zip(TABLES[table], values, strict=True))}
                    for key, values in entries]
            for table, entries in (rows or {}).items() if entries}


def binary(content: bytes | None) -> Binary | None:
    return None if content is None else Binary(content)
