"""The storage port contract: every adapter must pass this suite unchanged.

Adapters are listed in ``ADAPTERS``; each test gets a fresh, opened store on real files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from mongo_server import database_url, mongo_server

from fhir_server.search.plan import AnyOf, Cmp, IdMatch, IndexMatch, OfType, Query, SortKey
from fhir_server.storage.mongo.storage import MongoStorage
from fhir_server.storage.port import (
    AlreadyExists,
    CommitOptions,
    Condition,
    ConditionChanged,
    DuplicateIdentifier,
    ExportSlice,
    ExpungeTooLarge,
    Fact,
    HistoryQuery,
    IntegrityError,
    RecordChange,
    Reference,
    Storage,
    VersionConflict,
    Write,
)
from fhir_server.storage.sqlite import SqliteStorage

ADAPTERS: dict[str, Callable[[Path, str], Storage]] = {
    "sqlite": lambda tmp, _: SqliteStorage(f"sqlite:///{tmp / 'contract.db'}"),
    "mongodb": lambda _, server: MongoStorage(database_url(server)),
}


@pytest.fixture(scope="module")
def mongodb() -> Iterator[str]:
    with mongo_server() as url:
        yield url


class Store:
    """Runs the async port synchronously for readable tests."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.runner = asyncio.Runner()

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self.storage, name)
        return lambda *args, **kwargs: self.runner.run(method(*args, **kwargs))


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server = request.getfixturevalue("mongodb") if request.param == "mongodb" else ""
    wrapped = Store(ADAPTERS[request.param](tmp_path, server))
    wrapped.open()
    yield wrapped
    wrapped.close()
    wrapped.runner.close()


def put(rtype: str, rid: str, body: dict | None = None, kind: str = "update",
        if_match: int | None = None, refs: tuple[Reference, ...] = ()) -> Write:
    def render(version: int, ms: int) -> bytes:
        return orjson.dumps({"resourceType": rtype, "id": rid,
                             "meta": {"versionId": str(version)}, **(body or {})})
    return Write(kind, rtype, rid, render, if_match, refs)  # type: ignore[arg-type]


def test_versions_and_reads(store):
    [first] = store.commit([put("Patient", "a", {"gender": "male"}, kind="create")])
    assert (first.version, first.created, first.deleted) == (1, True, False)
    [second] = store.commit([put("Patient", "a", {"gender": "female"})])
    assert (second.version, second.created) == (2, False)
    assert second.last_updated_ms >= first.last_updated_ms
    current = store.read("Patient", "a")
    assert current.version == 2 and orjson.loads(current.content)["gender"] == "female"
    assert orjson.loads(store.vread("Patient", "a", 1).content)["gender"] == "male"
    assert store.vread("Patient", "a", 3) is None
    assert store.read("Patient", "b") is None


def test_delete_keeps_history(store):
    store.commit([put("Patient", "a")])
    [deleted] = store.commit([Write("delete", "Patient", "a")])
    assert deleted.deleted and deleted.version == 2
    assert store.read("Patient", "a").deleted
    [again] = store.commit([Write("delete", "Patient", "a")])
    assert again.version == 2  # no new version for a repeated delete
    [missing] = store.commit([Write("delete", "Patient", "never")])
    assert missing.version == 0 and missing.deleted
    [back] = store.commit([put("Patient", "a")])
    assert back.version == 3 and back.created
    page = store.history(HistoryQuery("Patient", "a"))
    assert [e.method for e in page.entries] == ["PUT", "DELETE", "PUT"]
    assert page.total == 3


def test_if_match_and_create_conflicts(store):
    store.commit([put("Patient", "a")])
    with pytest.raises(VersionConflict):
        store.commit([put("Patient", "a", if_match=5)])
    with pytest.raises(AlreadyExists):
        store.commit([put("Patient", "a", kind="create")])
    assert store.commit([put("Patient", "a", if_match=1)])[0].version == 2


def test_a_failed_commit_applies_nothing(store):
    with pytest.raises(VersionConflict):
        store.commit([put("Patient", "x"), put("Patient", "y", if_match=3)])
    assert store.read("Patient", "x") is None
    assert store.history(HistoryQuery()).total == 0


def test_referential_integrity(store):
    ref = Reference("Organization", "o", "Patient.managingOrganization")
    with pytest.raises(IntegrityError) as error:
        store.commit([put("Patient", "p", refs=(ref,))])
    assert error.value.dangling == [ref]
    store.commit([put("Organization", "o"), put("Patient", "p", refs=(ref,))])
    with pytest.raises(IntegrityError) as error:
        store.commit([Write("delete", "Organization", "o")])
    assert error.value.referenced == [("Organization", "o", ["Patient/p"])]
    store.commit([Write("delete", "Organization", "o")], CommitOptions(True, True))
    assert store.read("Organization", "o").deleted
    store.commit([put("Patient", "q", refs=(Reference("Organization", "zz", "x"),))],
                 CommitOptions(check_references=False))


def test_history_levels_paging_since_and_at(store):
    for i in range(5):
        store.commit([put("Patient", f"p{i}")])
    store.commit([put("Organization", "o")])
    store.commit([put("Patient", "p0", {"active": True})])
    assert store.history(HistoryQuery()).total == 7
    assert store.history(HistoryQuery("Patient")).total == 6
    first = store.history(HistoryQuery("Patient", count=4))
    assert len(first.entries) == 4 and first.next_seq is not None
    second = store.history(HistoryQuery("Patient", count=4, before_seq=first.next_seq))
    assert len(second.entries) == 2 and second.next_seq is None
    ids = [e.version.id for e in first.entries + second.entries]
    assert ids == ["p0", "p4", "p3", "p2", "p1", "p0"]
    latest = first.entries[0].version.last_updated_ms
    assert store.history(HistoryQuery(since_ms=latest + 1)).total == 0
    at = store.history(HistoryQuery("Patient", "p0", at_ms=latest))
    assert [e.version.version for e in at.entries] == [2]


def _rows(code: str, day: int) -> dict:
    return {"token": [("Observation.code", ("http://loinc.org", code))],
            "date": [("Observation.date", (day, day + 10))],
            "sort": [("Observation.date", (day,))]}


def test_search_by_index_rows_and_order(store):
    def indexed(rid: str, code: str, day: int) -> Write:
        body = {"code": {"text": code}, "day": day}
        return Write("update", "Observation", rid, put("Observation", rid, body).render, None,
                     (), _rows(code, day))

    def index_of(content: bytes) -> dict:  # how a stored version's rows are found again
        stored = orjson.loads(content)
        return _rows(stored["code"]["text"], stored["day"])

    store.storage.use_indexer(index_of)
    store.commit([indexed("a", "1", 300), indexed("b", "2", 100), indexed("c", "1", 200)])
    code = IndexMatch("token", "Observation.code", ((Cmp("code", "=", "1"),),))
    page = store.search(Query(("Observation",), (code,)))
    assert [m.id for m in page.matches] == ["a", "c"] and page.total == 2
    by_date = store.search(Query(("Observation",), (), (SortKey("Observation.date", True),)))
    assert [m.id for m in by_date.matches] == ["a", "c", "b"]
    store.commit([Write("delete", "Observation", "a")])
    assert [m.id for m in store.search(Query(("Observation",), (code,))).matches] == ["c"]
    store.commit([indexed("c", "2", 200)])  # an update replaces the index rows
    assert store.search(Query(("Observation",), (code,))).matches == []
    first = store.search(Query(("Observation",), count=1))
    assert first.has_next and [m.id for m in first.matches] == ["b"]
    rest = store.search(Query(("Observation",), count=1, cursor=first.matches[0].cursor))
    assert [m.id for m in rest.matches] == ["c"] and not rest.has_next


def test_facts_are_read_from_the_index_of_every_match(store):
    def referral(rid: str, code: str, day: int, subject: str | None) -> Write:
        rows = _rows(code, day)
        if subject:
            rows["reference"] = [("Observation.subject", ("Patient", subject, "", "")),
                                 ("Observation.subject", ("Patient", "zz", "", ""))]
        return Write("update", "Observation", rid, put("Observation", rid, {}).render, None,
                     (), rows)

    store.commit([referral("a", "1", 300, "p1"), referral("b", "2", 100, "p2"),
                  referral("c", "1", 200, None)])
    code = IndexMatch("token", "Observation.code", ((Cmp("code", "=", "1"),),))
    wanted = [Fact("reference", "Observation.subject"), Fact("sort", "Observation.date"),
              Fact("sort", "Observation.unknown")]
    found = store.facts(Query(("Observation",), (code,), count=1), wanted)
    assert sorted(found) == [("a", "Patient/p1", 300, None), ("c", None, 200, None)]
    assert sorted(row[0] for row in store.facts(Query(("Observation",)), [])) == \
        [("a"), ("b"), ("c")]


def test_rows_indexed_later_are_found_once_indexed(store):
    def later(rid: str, code: str) -> Write:
        body = {"code": {"text": code}, "day": 1}
        return replace(put("Observation", rid, body), index_later=True)

    store.storage.use_indexer(lambda content: _rows(orjson.loads(content)["code"]["text"], 1))
    store.commit([later("a", "1"), later("b", "2"), later("gone", "1")])
    store.commit([Write("delete", "Observation", "gone")])
    code = IndexMatch("token", "Observation.code", ((Cmp("code", "=", "1"),),))
    assert store.search(Query(("Observation",), (code,))).matches == []
    assert store.index_deferred(2) == 2
    while store.index_deferred(2):  # (a deleted one may count as done, or not at all)
        pass
    assert [m.id for m in store.search(Query(("Observation",), (code,))).matches] == ["a"]


def test_concurrent_commits_are_grouped_and_all_land(store):
    async def many() -> list:
        return await asyncio.gather(
            *(store.storage.commit([put("Patient", f"c{i}")]) for i in range(300)),
            store.storage.commit([put("Patient", "bad", if_match=9)]),
            return_exceptions=True)

    results = store.runner.run(many())
    assert isinstance(results[-1], VersionConflict)
    assert all(r[0].version == 1 for r in results[:-1])
    assert store.search(Query(("Patient",), total=True)).total == 300


def test_an_unchanged_update_is_skipped_when_asked(store):
    same = put("Patient", "s", {"active": True})
    [first] = store.commit([same])
    [again] = store.commit([replace(same, skip_unchanged=True)])
    assert (again.version, again.content, again.created) == (1, first.content, False)
    [forced] = store.commit([same])  # without the flag: a new version
    assert forced.version == 2
    [changed] = store.commit([replace(put("Patient", "s", {"active": False}),
                                      skip_unchanged=True)])
    assert changed.version == 3
    with pytest.raises(VersionConflict):  # If-Match is still checked first
        store.commit([replace(put("Patient", "s", {"active": False}, if_match=1),
                              skip_unchanged=True)])
    assert store.history(HistoryQuery("Patient", "s")).total == 3


def _identified(rid: str, value: str, rtype: str = "Patient") -> Write:
    rows = {"token": [(f"{rtype}.identifier", ("urn:oid:2.16.156.10011.1.3", value))]}
    return replace(put(rtype, rid), index=rows,
                   unique=(("urn:oid:2.16.156.10011.1.3", value),))


def test_unique_identifiers_are_checked_inside_the_commit(store):
    store.storage.use_indexer(lambda content: {})
    store.commit([_identified("a", "X1")])
    with pytest.raises(DuplicateIdentifier) as found:
        store.commit([_identified("b", "X1")])
    assert (found.value.holder, found.value.value) == ("Patient/a", "X1")
    with pytest.raises(DuplicateIdentifier):  # two writes of one commit
        store.commit([_identified("c", "X2"), _identified("d", "X2")])
    assert store.read("Patient", "c") is None  # nothing of the failed commit applied
    store.commit([_identified("a", "X1")])  # its holder may write it again
    store.commit([_identified("p", "X1", "Practitioner")])  # another type may hold it
    store.commit([Write("delete", "Patient", "a")])
    store.commit([_identified("e", "X1")])  # a deleted holder frees it


def test_conditions_are_searched_inside_the_commit(store):
    store.storage.use_indexer(lambda content: {})
    by_value = Query(("Patient",), (IndexMatch("token", "Patient.identifier", (
        (Cmp("system", "=", "urn:oid:2.16.156.10011.1.3"), Cmp("code", "=", "X1")),)),),
        count=2)
    none_yet = Condition(by_value, ())
    store.commit([_identified("a", "X1")], conditions=[none_yet])
    with pytest.raises(ConditionChanged) as changed:  # the create it allowed happened
        store.commit([_identified("b", "X1", "Practitioner")], conditions=[none_yet])
    assert changed.value.found == ["a"]
    assert store.read("Practitioner", "b") is None  # nothing of the commit applied
    [kept] = store.commit([put("Patient", "a", {"active": True})],
                          conditions=[Condition(by_value, ("a",))])
    assert kept.version == 2

    async def racing() -> list:  # one writer at a time: the first creates, the rest see it
        return await asyncio.gather(
            *(store.storage.commit([replace(_identified(f"r{i}", "X9", "Device"), unique=())],
                                   conditions=[Condition(replace(by_value, types=("Device",),
                                   where=(IndexMatch("token", "Device.identifier", (
                                       (Cmp("code", "=", "X9"),),)),)), ())])
              for i in range(20)), return_exceptions=True)

    results = store.runner.run(racing())
    assert sorted(type(r).__name__ for r in results) == ["ConditionChanged"] * 19 + ["list"]


def test_expunge_erases_every_version_and_cascades_on_request(store):
    store.storage.use_indexer(lambda content: {})
    store.commit([_identified("a", "X1")])
    store.commit([_identified("a", "X1")])
    store.commit([put("Observation", "o",
                      refs=(Reference("Patient", "a", "Observation.subject"),))])
    with pytest.raises(IntegrityError) as refused:
        store.expunge("Patient", "a")
    assert refused.value.referenced[0][2] == ["Observation/o"]
    recorded: list = []

    def record(erased: list) -> list:
        recorded.append(erased)
        return [put("AuditEvent", "audit")]

    erased = store.expunge("Patient", "a", cascade=True, record=record)
    assert erased == recorded[0] == [("Patient", "a"), ("Observation", "o")]
    assert store.read("Patient", "a") is None and store.vread("Patient", "a", 1) is None
    assert store.history(HistoryQuery("Patient", "a")).total == 0
    assert store.read("AuditEvent", "audit") is not None
    assert store.expunge("Patient", "a") == []
    store.commit([_identified("b", "X1")])  # its unique identifier is free again
    store.commit([put("Patient", "c"), put("Observation", "d", refs=(
        Reference("Patient", "c", "Observation.subject"),))])
    with pytest.raises(ExpungeTooLarge):
        store.expunge("Patient", "c", cascade=True, limit=1)
    assert store.read("Observation", "d") is not None


def test_every_resource_of_a_type_among_others(store):
    store.commit([put("Patient", "p"), put("Observation", "o"), put("Group", "g")])
    page = store.search(Query(("Patient", "Observation", "Group"),
                              (AnyOf((OfType(("Patient",)), IdMatch(("g",), types=("Group",)))),)))
    assert sorted(m.id for m in page.matches) == ["g", "p"]


def test_ping_and_stats(store):
    store.ping()
    store.commit([put("Patient", "x")])
    stats = store.storage.stats()
    assert stats.writer_queue == 0 and stats.size_bytes > 0
    groups: list[int] = []
    store.storage.observe_groups(groups.append)
    store.commit([put("Patient", "y")])
    assert groups and all(size >= 1 for size in groups)


def test_records_are_kept_listed_replaced_guarded_and_expire(store):
    assert store.put_record("client", "b", b"2") and store.put_record("client", "a", b"1")
    assert store.get_record("client", "a") == b"1" and store.get_record("key", "a") is None
    assert store.put_record("client", "a", b"one")  # replaced
    assert [(r.key, r.value) for r in store.list_records("client")] == [("a", b"one"),
                                                                        ("b", b"2")]
    future = 2**62
    assert store.put_record("jti", "x", b"", future, only_new=True)
    assert not store.put_record("jti", "x", b"", future, only_new=True)  # a replay
    assert store.put_record("jti", "gone", b"", 1, only_new=True)  # already expired
    assert store.get_record("jti", "gone") is None
    assert store.put_record("jti", "gone", b"", future, only_new=True)  # free again
    assert store.delete_record("client", "a") and not store.delete_record("client", "a")
    assert [r.key for r in store.list_records("client")] == ["b"]


def test_records_change_in_bulk_by_prefix_and_with_a_commit_only(store):
    store.change_records([RecordChange("ledger", key, key.encode())
                          for key in ("2026-10/a", "2026-11/b", "2026-11/c", "2026-12/d")])
    assert [r.key for r in store.list_records("ledger", "2026-11/")] == ["2026-11/b",
                                                                        "2026-11/c"]
    assert store.record_values("ledger", "2026-11/") == [b"2026-11/b", b"2026-11/c"]
    assert len(store.list_records("ledger")) == 4
    kept = replace(put("Patient", "p"), records=(RecordChange("ledger", "2026-11/b", None),
                                                 RecordChange("ledger", "2026-11/e", b"e")))
    with pytest.raises(VersionConflict):  # the commit fails: its records stay as they were
        store.commit([put("Patient", "q"), replace(kept, if_match=7)])
    assert store.record_values("ledger", "2026-11/") == [b"2026-11/b", b"2026-11/c"]
    store.commit([kept])
    assert store.record_values("ledger", "2026-11/") == [b"2026-11/c", b"e"]
    assert store.read("Patient", "q") is None


def test_export_batches_show_each_resource_as_it_was_at_the_mark(store):
    def code_of(content: bytes) -> dict:
        return _rows(orjson.loads(content).get("code", "none"), 1)

    store.storage.use_indexer(code_of)
    for n in range(5):
        store.commit([Write("update", "Observation", f"o{n}",
                            put("Observation", f"o{n}", {"code": "x" if n % 2 else "y"}).render,
                            None, (), code_of(orjson.dumps({"code": "x" if n % 2 else "y"})))])
    store.commit([put("Patient", "p")])
    store.commit([Write("delete", "Observation", "o4")])
    mark = store.snapshot_mark()
    since = store.read("Observation", "o3").last_updated_ms
    store.commit([put("Observation", "o0", {"code": "changed"}),  # after the mark
                  put("Observation", "late"), Write("delete", "Observation", "o1")])

    def walk(**criteria) -> list[dict]:
        found, after = [], 0
        while after is not None:
            contents, after = store.export_batch(
                ExportSlice("Observation", mark, after, size=2, **criteria))
            found += [orjson.loads(c) for c in contents]
        return found

    everything = walk()
    assert [(r["id"], r["meta"]["versionId"]) for r in everything] == [
        ("o0", "1"), ("o1", "1"), ("o2", "1"), ("o3", "1")]
    assert everything[0]["code"] == "y"  # the version current at the mark
    x = IndexMatch("token", "Observation.code", ((Cmp("code", "=", "x"),),))
    assert [r["id"] for r in walk(where=(x,))] == ["o3"]  # o1's rows went with its deletion
    changed = [i for i in ("o0", "o1", "o2", "o3")
               if store.vread("Observation", i, 1).last_updated_ms > since - 1]
    assert "o3" in changed and [r["id"] for r in walk(since_ms=since - 1)] == changed


def test_commits_whose_callers_give_up_leave_the_store_working(store):
    """A caller cancelled while its commit waits or runs (a client gone, a shutdown): the
    store goes on answering the others, and each cancelled commit is whole or absent."""

    async def give_up_on_many() -> list[bool]:
        tasks = [asyncio.create_task(store.storage.put_record("k", str(n), b"v"))
                 for n in range(200)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return await asyncio.wait_for(asyncio.gather(*(
            store.storage.put_record("after", str(n), b"v") for n in range(20))), 10)

    assert all(store.runner.run(give_up_on_many()))
    kept = {record.key for record in store.list_records("k")}
    assert {str(n) for n in range(1, 200, 2)} <= kept


def test_every_version_oldest_first_and_a_migrated_time_kept(store):
    store.commit([put("Patient", "a")])
    store.commit([replace(put("Patient", "b"), updated_ms=1_000)])
    store.commit([put("Patient", "a", kind="delete")])
    found = store.versions(0, 10)
    assert [(e.version.id, e.version.version, e.method) for e in found] == [
        ("a", 1, "PUT"), ("b", 1, "PUT"), ("a", 2, "DELETE")]
    assert found[1].version.last_updated_ms == 1_000
    assert [e.seq for e in store.versions(found[0].seq, 1)] == [found[1].seq]


def test_a_chain_moved_here_continues_after_its_purged_links(store):
    store.continue_chain(41, "ab" * 32)
    link = Write("create", "AuditEvent", "e", link=lambda version, ms, seq, previous:
                 orjson.dumps({"resourceType": "AuditEvent", "seq": seq, "before": previous}))
    store.commit([link])
    [stored] = [c for c in store.chain(0, 10) if c.id == "e"]
    assert stored.seq == 42 and orjson.loads(stored.content) == {
        "resourceType": "AuditEvent", "seq": 42, "before": "ab" * 32}
