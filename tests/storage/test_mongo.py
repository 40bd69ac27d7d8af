"""What the MongoDB adapter does beyond the storage contract: a deployment without
transactions is refused at start-up, an unreachable one is a storage error, a database that
goes away answers 503 until it is back, and a resource over MongoDB's document limit is
refused with 413 before MongoDB sees it; FHIR_MONGO_EXPLAIN logs each search query's plan."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
from pathlib import Path

import pytest
from bson import json_util
from mongo_server import Secantus, database_url, mongo_server
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.storage.mongo.storage import MongoStorage
from fhir_server.storage.port import StorageError

PATIENT = {"resourceType": "Patient", "name": [{"family": "王"}]}

# PyMongo 4.20 leaves a monitor's socket unclosed when closing the client cancels a connect in
# flight (pool_shared closes it on OSError, not on CancelledError); it is collected at the
# test's teardown, where this filter applies, not in a later test.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_pymongo_leftovers():
    yield
    gc.collect()


def test_a_standalone_server_is_refused_at_start_up():
    with mongo_server("--standalone") as url:
        storage = MongoStorage(database_url(url))
        with pytest.raises(StorageError, match="cannot run multi-document transactions"):
            asyncio.run(storage.open())


def test_an_unreachable_server_is_a_storage_error():
    storage = MongoStorage("mongodb://127.0.0.1:9/fhir?serverSelectionTimeoutMS=300")
    with pytest.raises(StorageError, match="unreachable"):
        asyncio.run(storage.open())


def test_a_database_that_goes_away_answers_503_and_the_server_recovers(tmp_path: Path):
    server = Secantus(tmp_path)
    server.start()
    try:
        url = database_url(server.url) + "&serverSelectionTimeoutMS=1000"
        with Client(build_app(Settings(storage=url))) as client:
            created = client.post("Patient", json={"resourceType": "Patient"})
            assert created.status_code == 201
            where = created.headers["location"].split("/fhir/")[1].split("/_history")[0]
            server.stop()
            for answer in (client.get(where), client.post("Patient", json=PATIENT),
                           client.get("Patient?name=x")):
                assert answer.status_code == 503
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["issue"][0]["code"] == "transient"
            assert client.http_get("/health/ready").status_code == 503
            server.start()
            assert client.get(where).status_code == 200
            assert client.post("Patient", json=PATIENT).status_code == 201
            assert client.get("Patient").json()["total"] == 2
    finally:
        server.stop()


def test_a_resource_over_mongodbs_document_limit_answers_413_and_nothing_is_kept(
        mongodb_server: str):
    settings = Settings(storage=database_url(mongodb_server), max_body_bytes=40 * 1024 * 1024)
    data = base64.b64encode(b"\0" * (13 * 1024 * 1024)).decode()  # 17.3 MiB as base64
    with Client(build_app(settings)) as client:
        refused = client.post("Binary", json={"resourceType": "Binary",
                                              "contentType": "application/pdf", "data": data})
        assert refused.status_code == 413
        issue = refused.json()["issue"][0]
        assert issue["code"] == "too-costly" and "16777216" in issue["diagnostics"]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Binary", "contentType": "application/pdf",
                          "data": data}, "request": {"method": "POST", "url": "Binary"}}]}
        assert client.post("", json=bundle).status_code == 413
        assert client.get("Patient").json()["total"] == 0
        assert client.get("Binary").json()["total"] == 0


def test_explained_searches_log_the_plan_of_each_query(mongodb_server: str,
                                                       caplog: pytest.LogCaptureFixture):
    settings = Settings(storage=database_url(mongodb_server), mongo_explain=True)
    with Client(build_app(settings)) as client, caplog.at_level(
            logging.INFO, "fhir_server.mongo.explain"):
        client.post("Patient", json=PATIENT)
        assert client.get("Patient?family=王&_total=accurate").json()["total"] == 1
        assert client.get("Patient?_sort=family").status_code == 200
    plans = [json_util.loads(r.getMessage()) for r in caplog.records
             if r.name == "fhir_server.mongo.explain" and "Patient" in r.getMessage()]
    # (the server's own background searches, of Subscriptions and overdue Tasks, aside)
    assert [next(iter(p["command"])) for p in plans] == ["find", "count", "aggregate"]
    assert all(p["plan"] for p in plans)  # (SecantusDB names only the plans it can explain)
    assert plans[0]["returned"] == 1 and plans[0]["command"]["filter"]["idx.string.norm"]


def test_the_server_stops_at_once_whenever_it_is_stopped(mongodb_server: str):
    """PyMongo can swallow the cancellation of a task inside one of its operations: the
    export sweeper stopped then only by its stop event (its shutdown once hung forever)."""
    async def cycles() -> None:
        for n in range(12):
            app = build_app(Settings(storage=database_url(mongodb_server)))
            await app.startup()
            await asyncio.sleep(n % 4 * 0.002)
            await asyncio.wait_for(app.shutdown(), 20)
    asyncio.run(cycles())
