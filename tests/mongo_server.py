"""A MongoDB wire-protocol server for the tests: the one ``FHIR_TEST_MONGODB_URI`` names
(a real mongod, replica set), else SecantusDB (PyPI ``secantusdb``) started on a free
loopback port over a temporary folder and stopped at the end. Each caller gets a database
of its own (``database_url``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with MongoClient(url, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


class Secantus:
    """A SecantusDB process over ``folder`` on a fixed loopback port: started, stopped and
    started again over the same data."""

    def __init__(self, folder: Path, *extra: str) -> None:
        self.folder, self.extra = folder, extra
        self.port = _free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.folder / "server.log"
        with log.open("ab") as output:
            self._process = subprocess.Popen(
                [shutil.which("secantusd-py") or "secantusd-py", "--host", "127.0.0.1",
                 "--port", str(self.port), "--storage-path", str(self.folder / "data"),
                 "--log-level", "ERROR", *self.extra], stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SecantusDB did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


@contextmanager
def mongo_server(*extra: str) -> Iterator[str]:
    """The URL of a running server (``extra``: more secantusd-py flags)."""
    given = os.environ.get("FHIR_TEST_MONGODB_URI")
    if given and not extra:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="secantus-"))
    server = Secantus(folder, *extra)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def database_url(server: str) -> str:
    """``server`` with a fresh database name in its path."""
    head, _, query = server.partition("?")
    return f"{head.rstrip('/')}/t{uuid.uuid4().hex[:12]}" + (f"?{query}" if query else "")
