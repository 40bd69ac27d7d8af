"""What the MongoDB adapter does beyond the storage contract: a deployment without
transactions is refused at start-up, and concurrent commits of one process all land."""

from __future__ import annotations

import asyncio
import gc

import pytest
from mongo_server import database_url, mongo_server

from fhir_server.storage.mongo.storage import MongoStorage
from fhir_server.storage.port import StorageError

# PyMongo 4.20 leaves a monitor's socket unclosed when closing the client cancels a connect in
# flight (pool_shared closes it on OSError, not on CancelledError); it
# is collected at the test's teardown, where this filter applies, not in a later test.
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
