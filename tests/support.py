"""Test support: drive the ASGI app in-process with a synchronous httpx client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from mongo_server import database_url

from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import AlliancePackage, demo_folder
from fhir_server.rest.asgi import FhirAsgiApp

PACKAGE = AlliancePackage.load(Settings())  # installed into every server when it opens
PACKAGE_SIZE = len(PACKAGE.marked())


def storage_url(request: pytest.FixtureRequest, folder: Path, name: str) -> str:
    """A fresh store of the adapter the run tests (``--storage``)."""
    if request.config.getoption("--storage") == "mongodb":
        return database_url(request.getfixturevalue("mongodb_server"))
    return f"sqlite:///{folder / name}"


def load_demo(settings: Settings) -> None:
    """The demo alliance, loaded into the settings' storage."""
    assert asyncio.run(load_paths(settings, [demo_folder()])).failed == 0


class Client:
    """A synchronous httpx client over the ASGI app, with its lifespan run around it."""

    def __init__(self, app: FhirAsgiApp, lifespan: bool = True) -> None:
        self.app = app
        self.lifespan = lifespan
        self.runner = asyncio.Runner()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://testserver/fhir")

    def __enter__(self) -> Client:
        if self.app.startup and self.lifespan:
            self.runner.run(self.app.startup())
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.run(self.http.aclose())
        if self.app.shutdown and self.lifespan:
            self.runner.run(self.app.shutdown())
        self.runner.close()

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return self.runner.run(self.http.request(method, url, **kwargs))  # type: ignore[arg-type]

    def http_get(self, path: str) -> httpx.Response:
        """GET a path outside the FHIR base (``/health/live``)."""
        return self.request("GET", f"http://testserver{path}")

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)
