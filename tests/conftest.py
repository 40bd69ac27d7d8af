"""Shared fixtures: a fresh SQLite-backed app per test, driven in-process over ASGI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mongo_child
import pytest
from mongo_server import mongo_server
from support import Client, load_demo, storage_url

from fhir_server.app import build_app
from fhir_server.config import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--storage", default=os.environ.get("FHIR_TEST_STORAGE", "sqlite"),
                     choices=("sqlite", "mongodb"),
                     help="the adapter of the ``settings`` and ``demo`` fixtures (mongodb: "
                          "SecantusDB started by the tests, or FHIR_TEST_MONGODB_URI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--storage") != "mongodb":
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {marker.args[0]}"))


def pytest_collection_finish(session: pytest.Session) -> None:
    mongo_child.start(session.config, session.items)


def pytest_unconfigure(config: pytest.Config) -> None:
    mongo_child.stop(config)


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[str]:
    with mongo_server() as url:
        yield url


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(storage=storage_url(request, tmp_path, "test.db"))


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A server holding the demo alliance, shared by a module's tests."""
    settings = Settings(storage=storage_url(request, tmp_path_factory.mktemp("demo"),
                                            "demo.db"))
    load_demo(settings)
    with Client(build_app(settings)) as client:
        yield client


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with Client(build_app(settings)) as c:
        yield c
