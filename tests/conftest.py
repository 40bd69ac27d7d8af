"""Shared fixtures: a fresh SQLite-backed app per test, driven in-process over ASGI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage=f"sqlite:///{tmp_path / 'test.db'}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A server holding the demo alliance, shared by a module's tests."""
    settings = Settings(storage=f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}")
    load_demo(settings)
    with Client(build_app(settings)) as client:
        yield client


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with Client(build_app(settings)) as c:
        yield c
