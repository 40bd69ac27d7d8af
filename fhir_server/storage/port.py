"""The storage port: what core needs from a database, and nothing about HTTP.

Every adapter (``sqlite``; ``mongo`` later) implements :class:`Storage` and passes the
contract suite in ``tests/storage``. Versions are assigned by the adapter at commit time
(``version`` = previous + 1, ``last_updated`` = the commit's instant), because only the
commit knows them; core supplies ``Write.render`` to turn a resource plus those two values
into its canonical bytes. Spec: https://hl7.org/fhir/R4/http.html (versioning, history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fhir_server.search.extract import IndexRows
from fhir_server.search.plan import Cursor, Node, Query

WriteKind = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored: canonical JSON bytes, or a deletion."""

    resource_type: str
    id: str
    version: int
    last_updated_ms: int
    deleted: bool
    content: bytes  # b"" for a deletion
    created: bool = False  # set by commit: this write made the resource exist anew


@dataclass(frozen=True, slots=True)
class Reference:
    """An outgoing reference of a written resource, for referential integrity."""

    resource_type: str
    id: str
    expression: str  # where it stands, e.g. "Observation.subject"


MARK_STALE_SECONDS = 0.05  # how late ``data_mark`` may see another process's writes

# (version, last_updated_ms, chain sequence, SHA-256 hex of the previous link) -> bytes
Linker = Callable[[int, int, int, str], bytes]


def after_prefix(prefix: str) -> str:
    """The least key above every key starting with ``prefix`` (a range's exclusive end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else chr(0x10FFFF)


@dataclass(frozen=True, slots=True)
class RecordChange:
    """A record kept (``value`` set) or removed (None) along with a commit's writes."""

    kind: str
    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Write:
    """One change inside an atomic commit."""

    kind: WriteKind
    resource_type: str
    id: str
    render: Callable[[int, int], bytes] | None = None  # (version, last_updated_ms) -> bytes
    if_match: int | None = None  # the version the client expects to be current
    references: tuple[Reference, ...] = ()
    index: IndexRows | None = None  # search index rows of the new version
    skip_unchanged: bool = False  # an update whose content equals the current one: no-op
    unique: tuple[tuple[str, str], ...] = ()  # (system, value) no other of its type may hold
    link: Linker | None = None  # set: a link of the audit chain, rendered by this instead
    index_later: bool = False  # its index rows are written by ``index_deferred``, not now
    updated_ms: int | None = None  # set: the version's time as it was (a migration), not now
    records: tuple[RecordChange, ...] = ()  # records changed in the same transaction


@dataclass(frozen=True, slots=True)
class Fact:
    """One value of a match read by ``Storage.facts``: the target ("Type/id") of its first
    row of a reference parameter, or the sort value of a date (epoch ms of the earliest
    start), number or string parameter."""

    table: Literal["reference", "sort"]
    param: str  # the parameter's index key, e.g. "ServiceRequest.requester"


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One stored link of the audit chain: its place, its resource, the SHA-256 (hex) of
    its stored bytes when written, and those bytes as they are now."""

    seq: int
    resource_type: str
    id: str
    hash: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Condition:
    """A search a commit depends on: applied only if ``query`` (a conditional request's
    criteria) still finds exactly ``expected`` (ids, any order) inside the write
    transaction, before its writes; else ConditionChanged and nothing is applied."""

    query: Query
    expected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommitOptions:
    check_references: bool = True  # dangling relative references fail the commit
    allow_referenced_delete: bool = False  # else deleting a referenced resource fails


DEFAULT_OPTIONS = CommitOptions()


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    resource_type: str | None = None  # None: system level
    id: str | None = None  # set: instance level
    since_ms: int | None = None
    at_ms: int | None = None
    count: int = 50
    before_seq: int | None = None  # paging cursor: entries older than this position
    visible: tuple[Node, ...] = ()  # criteria the resource (as it is now) must meet


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    version: StoredVersion
    method: str  # POST, PUT or DELETE


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    total: int
    next_seq: int | None  # cursor of the next page, None on the last


@dataclass(frozen=True, slots=True)
class Match:
    """One search result: the stored bytes and where it stands in the order."""

    resource_type: str
    id: str
    content: bytes
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class SearchPage:
    matches: list[Match]
    included: list[Match]
    total: int | None
    has_next: bool
    has_previous: bool
    include_limit_hit: bool = False


class StorageError(Exception):
    """Base of the port's errors; core maps each to a FhirError."""


class StorageUnavailable(StorageError):
    """The database cannot be reached (or stopped answering) within the configured timeouts:
    the request may succeed again once it is back."""


class VersionConflict(StorageError):
    def __init__(self, resource_type: str, id: str, expected: int, actual: int | None) -> None:
        self.resource_type, self.id = resource_type, id
        self.expected, self.actual = expected, actual
        super().__init__(f"{resource_type}/{id}: expected version {expected}, found {actual}")


class AlreadyExists(StorageError):
    def __init__(self, resource_type: str, id: str) -> None:
        self.resource_type, self.id = resource_type, id
        super().__init__(f"{resource_type}/{id} already exists")


class DuplicateIdentifier(StorageError):
    """A unique identifier (``Write.unique``) already held by another resource."""

    def __init__(self, resource_type: str, id: str, system: str, value: str,
                 holder: str) -> None:
        self.resource_type, self.id, self.system, self.value = resource_type, id, system, value
        self.holder = holder  # "Type/id" of the resource that holds it
        super().__init__(f"{system}|{value} is already the identifier of {holder}")


class SearchTimeout(StorageError):
    """A search ran past the storage's deadline and was stopped."""


class ConditionChanged(StorageError):
    """A commit's Condition found other matches than those it was prepared for."""

    def __init__(self, condition: Condition, found: Sequence[str]) -> None:
        self.condition, self.found = condition, list(found)
        super().__init__(f"the condition now matches {len(found)} resource(s)")


class ExpungeTooLarge(StorageError):
    """A cascading expunge would erase more resources than its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the cascade reaches more than {limit} resources")


class ResourceTooLarge(StorageError):
    """A resource bigger than the storage can hold in one record (MongoDB: 16 MiB)."""

    def __init__(self, resource_type: str, id: str, size: int, limit: int) -> None:
        self.resource_type, self.id, self.size, self.limit = resource_type, id, size, limit
        super().__init__(f"{resource_type}/{id} takes {size} bytes stored, over the "
                         f"storage's limit of {limit}")


class IntegrityError(StorageError):
    """Dangling references, or deletes of resources that others still reference."""

    def __init__(self, dangling: Sequence[Reference] = (),
                 referenced: Sequence[tuple[str, str, list[str]]] = ()) -> None:
        self.dangling = list(dangling)
        self.referenced = list(referenced)  # (type, id, ["Type/id" of referrers])
        super().__init__("referential integrity")


@dataclass(frozen=True, slots=True)
class Record:
    """One of the server's own records (a registered client, a key, a replay guard, an
    export job): opaque bytes under a kind and a key, invisible once ``expires_ms`` passed."""

    key: str
    value: bytes
    expires_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ExportSlice:
    """The next stored resources of one type for a bulk export, as they were at ``mark``
    (see ``Storage.snapshot_mark``): those after ``after`` in storage order that match
    ``where`` (plan nodes, on current index rows) and changed after ``since_ms``."""

    resource_type: str
    mark: int
    after: int = 0
    size: int = 1000
    where: tuple[Node, ...] = ()
    since_ms: int | None = None


ReindexRows = Callable[[bytes], IndexRows]
GroupObserver = Callable[[int], None]
Recorder = Callable[[list[tuple[str, str]]], Sequence[Write]]


@dataclass(frozen=True, slots=True)
class StorageStats:
    """What an operator watches (``/metrics``)."""

    writer_queue: int  # commits waiting for the writer
    size_bytes: int  # what the database takes on disk


class Storage(Protocol):
    """One method per storage need of the interactions."""

    async def open(self) -> None:
        """Create or migrate the schema; start workers."""

    async def close(self) -> None:
        """Finish pending writes and release every connection."""

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version (``deleted`` set when its last version is a deletion)."""

    async def vread(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        """One version by number (https://hl7.org/fhir/R4/http.html#vread)."""

    async def commit(self, writes: Sequence[Write], options: CommitOptions = DEFAULT_OPTIONS,
                     conditions: Sequence[Condition] = ()) -> list[StoredVersion]:
        """Apply all writes atomically, in order; return the new version of each.

        ``conditions`` are evaluated first, in the same transaction as the writes and
        serialised with every other commit (across processes too), so a conditional
        interaction never acts on a stale search. A delete of a missing or already deleted
        resource changes nothing and returns its current state. Raises ConditionChanged,
        VersionConflict, AlreadyExists, DuplicateIdentifier or IntegrityError; then nothing
        of the commit is applied.
        """

    async def expunge(self, resource_type: str, id: str, cascade: bool = False,
                      limit: int = 1000, record: Recorder | None = None,
                      ) -> list[tuple[str, str]]:
        """Erase a resource: every version, index row and reference of it, and with
        ``cascade`` every current resource that references it (transitively, at most
        ``limit``); then apply the writes ``record`` makes of what was erased (the audit
        of the erasure) in the same transaction. Return what was erased ([] when nothing
        is stored under that id). IntegrityError (``referenced``) when current resources
        reference it and ``cascade`` is off; ExpungeTooLarge beyond ``limit``; nothing is
        erased then."""

    async def put_record(self, kind: str, key: str, value: bytes,
                         expires_ms: int | None = None, only_new: bool = False) -> bool:
        """Keep a record (replacing one under the same key); with ``only_new`` only when no
        unexpired record holds that key, atomically (a replay guard). Whether it was kept."""

    async def get_record(self, kind: str, key: str) -> bytes | None:
        """The value of an unexpired record, or None."""

    async def list_records(self, kind: str, prefix: str = "") -> list[Record]:
        """The unexpired records of a kind (whose key starts with ``prefix``), by key."""

    async def record_values(self, kind: str, prefix: str) -> list[bytes]:
        """The values alone of ``list_records(kind, prefix)`` (a bulk read: no Record per
        row)."""

    async def change_records(self, changes: Sequence[RecordChange]) -> None:
        """Keep or remove many records (no expiry) in one transaction."""

    async def delete_record(self, kind: str, key: str) -> bool:
        """Remove a record; whether there was one."""

    async def data_mark(self) -> int:
        """A number that changes whenever a resource other than a link of the audit chain
        is written (what was derived from the data is still valid while it holds): at once
        for this process's writes, within ``MARK_STALE_SECONDS`` for another process's."""

    async def chain(self, after_seq: int, size: int) -> list[ChainLink]:
        """Up to ``size`` links of the audit chain after ``after_seq``, in order."""

    async def continue_chain(self, seq: int, hash: str) -> None:
        """Make the next link of the audit chain number ``seq + 1`` and name ``hash`` as the
        one before it: a chain whose first links were purged, moved here (on a store
        without links)."""

    async def versions(self, after_seq: int, size: int) -> list[HistoryEntry]:
        """Up to ``size`` versions of any resource after ``after_seq``, oldest first."""

    async def purge_chain(self, through_seq: int) -> int:
        """Erase the links up to ``through_seq`` and their resources (every version, every
        index row); how many were erased."""

    async def snapshot_mark(self) -> int:
        """A mark of what is committed now: an export at this mark sees every commit
        applied before and none applied after (by any process)."""

    async def export_batch(self, part: ExportSlice) -> tuple[list[bytes], int | None]:
        """Up to ``part.size`` resources (stored bytes of their version current at the
        mark; deleted ones not at all) and the position to continue after, or None when
        there are no more."""

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """Versions newest first (https://hl7.org/fhir/R4/http.html#history)."""

    async def search(self, query: Query) -> SearchPage:
        """Run a search plan (https://hl7.org/fhir/R4/search.html): matches in order, a
        page of ``query.count`` from ``query.cursor``, the included resources, the total.
        SearchTimeout when it runs longer than the adapter's search deadline."""

    async def facts(self, query: Query, wanted: Sequence[Fact]) -> list[tuple[Any, ...]]:
        """Every match of a plan (no paging, no includes, no sort), as a tuple: its id,
        then each wanted value of its index (None where it has none). For figures
        computed on the index without loading resources (the referral KPIs)."""

    async def reindex_batch(self, after_rid: int, size: int,
                            rows: ReindexRows) -> tuple[int | None, int]:
        """Replace the index rows of up to ``size`` current resources after ``after_rid``,
        computing them with ``rows``; return (the last rid done or None when finished,
        how many were done)."""

    async def index_deferred(self, size: int) -> int:
        """Write the index rows of up to ``size`` resources stored with ``index_later``
        (with the indexer of ``use_indexer``); return how many were done (0: none left)."""

    def use_indexer(self, rows: ReindexRows) -> None:
        """How to recompute a stored version's index rows (to remove them on update)."""

    async def secret(self) -> bytes:
        """A random secret made once per database (signs paging tokens)."""

    async def pending_reindex(self) -> bool:
        """Whether stored resources lack index rows (after a schema migration)."""

    async def ping(self) -> None:
        """Answer a trivial query (readiness); StorageError when storage is unreachable."""

    def stats(self) -> StorageStats:
        """The writer's queue and the database size, cheaply (no query)."""

    def observe_groups(self, observer: GroupObserver) -> None:
        """Call ``observer`` with the number of commits of each group the writer applies."""
