"""``alliance-fhir migrate``: SQLite to MongoDB and back, every version as it was (ids,
version numbers, times, bytes, deletions), searchable on the target, the audit chain (also
one whose first links were purged) verifying there, the clients kept; refused into a store
that holds resources."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from mongo_server import database_url

from fhir_server.app import build_service, open_storage
from fhir_server.audit import chain
from fhir_server.audit.events import REST, SUCCESS, audit_event, server_agent
from fhir_server.auth import clients
from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.core.service import FhirService
from fhir_server.migrate import MigrationError, migrate, tally
from fhir_server.search.plan import Query
from fhir_server.storage.port import HistoryQuery


def patient(id: str, family: str) -> dict:
    return {"resourceType": "Patient", "id": id, "name": [{"family": family}]}


async def events(service: FhirService, count: int) -> None:
    await service.record_all([audit_event(REST, "R", SUCCESS, f"read {n}", [server_agent()])
                              for n in range(count)])


async def fill(url: str) -> None:
    """Versions of every kind, a purged start of the audit chain, a client."""
    service = build_service(Settings(storage=url))
    await service.open()
    try:
        for id, family in (("a", "王"), ("b", "李"), ("c", "张")):
            await service.commit([service.prepare_update("Patient", id, patient(id, family))])
        await service.commit([service.prepare_update("Patient", "a", patient("a", "王二"))])
        await service.commit([service.prepare_delete("Patient", "b")])
        await service.commit([service.prepare_update("Patient", "b", patient("b", "李四"))])
        await service.commit([service.prepare_delete("Patient", "c")])
        await events(service, 3)
        await chain.purge(service, 0, dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        await events(service, 2)
        await service.storage.put_record(clients.KIND, "lis-1", b'{"id": "lis-1"}')
    finally:
        await service.close()


async def contents(url: str) -> dict:
    """What a store shows: its tally, history, a search, the chain and the client."""
    storage = open_storage(Settings(storage=url))
    service = FhirService(storage, Settings(storage=url))
    await storage.open()
    try:
        await service.load_search_parameters()
        found = await service.searcher.search(service.searcher.parse(("Patient",),
                                                                     [("family", "王")]))
        history = await storage.history(HistoryQuery("Patient", "b"))
        verdict = await chain.verify(storage)
        counted = await tally(storage)
        return {"versions": dict(counted.versions), "digest": counted.digest.hexdigest(),
                "found": [m.id for m in found.page.matches],
                "b": [(e.version.version, e.method, e.version.last_updated_ms)
                      for e in history.entries],
                "c": (await storage.read("Patient", "c")).deleted,  # type: ignore[union-attr]
                "chain": (verdict.broken, verdict.checked),
                "client": await storage.get_record(clients.KIND, "lis-1"),
                "all": (await storage.search(Query(("Patient",), total=True))).total}
    finally:
        await storage.close()


def test_a_store_moves_to_mongodb_and_back_as_it_was(tmp_path: Path, mongodb_server: str,
                                                     capsys: pytest.CaptureFixture[str]):
    first, back = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    mongo = database_url(mongodb_server)
    asyncio.run(fill(first))
    assert main(["migrate", "--from", first, "--to", mongo]) == 0
    assert "SHA-256" in capsys.readouterr().err
    assert main(["migrate", "--from", mongo, "--to", back]) == 0
    shown = [asyncio.run(contents(url)) for url in (first, mongo, back)]
    assert shown[0] == shown[1] == shown[2]
    assert shown[0]["found"] == ["a"] and shown[0]["c"] is True and shown[0]["all"] == 2
    assert [(v, m) for v, m, _ in shown[0]["b"]] == [(3, "PUT"), (2, "DELETE"), (1, "PUT")]
    assert shown[0]["chain"] == ("", 3)  # unbroken: the purge's event and the two after it
    assert shown[0]["client"] == b'{"id": "lis-1"}'


def test_a_store_that_holds_resources_is_not_a_target(tmp_path: Path):
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    asyncio.run(fill(first))
    asyncio.run(fill(second))
    assert main(["migrate", "--from", first, "--to", second]) == 1

    async def directly() -> None:
        source = build_service(Settings(storage=first))
        target = open_storage(Settings(storage=second))
        await source.storage.open()
        await target.open()
        try:
            with pytest.raises(MigrationError, match="empty"):
                await migrate(source, target)
        finally:
            await target.close()
            await source.storage.close()
    asyncio.run(directly())
