"""Start-up is safe and honest: concurrent migrations, multi-worker starts on fresh
databases, and a non-zero exit with the reason when the server cannot start."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest
from server_process import ServerProcess

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.startup import STARTUP_REPORT, failures
from fhir_server.storage.sqlite import SqliteStorage
from fhir_server.storage.sqlite_schema import MIGRATIONS


def _open_and_close(path: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    storage = SqliteStorage(f"sqlite:///{path}")
    asyncio.run(storage.open())
    asyncio.run(storage.close())


def test_processes_migrating_one_fresh_database_at_once(tmp_path):
    for trial in range(4):
        path = str(tmp_path / f"fresh-{trial}.db")
        context = multiprocessing.get_context("spawn")
        start = context.Event()
        processes = [context.Process(target=_open_and_close, args=(path, start))
                     for _ in range(4)]
        for process in processes:
            process.start()
        start.set()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * 4
        with sqlite3.connect(path) as conn:
            versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))  # each migration once


@pytest.mark.parametrize("workers", [2, 4])
def test_multi_worker_servers_start_on_fresh_databases(tmp_path, workers):
    for trial in range(2):
        server = ServerProcess(tmp_path / f"w{workers}-{trial}.db", "--workers", str(workers))
        try:
            for _ in range(workers * 2):
                assert httpx.get(f"{server.base}/Patient?_summary=count").status_code == 200
        finally:
            server.stop()
        assert server.process.returncode == 0


def test_a_server_that_cannot_open_its_storage_exits_non_zero(tmp_path):
    missing = tmp_path / "no-such-folder" / "x.db"
    done = subprocess.run([sys.executable, "-m", "fhir_server", "serve", "--port", "1",
                           "--storage", f"sqlite:///{missing}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot start: cannot create the database" in done.stderr
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_fails_its_start_up_reports_why(tmp_path, monkeypatch):
    report = tmp_path / "report"
    monkeypatch.setenv(STARTUP_REPORT, str(report))
    app = build_app(Settings(storage=f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}"))
    with pytest.raises(Exception, match="cannot create the database"):
        asyncio.run(app.startup())  # type: ignore[union-attr]
    assert "cannot create the database" in failures(report)
    assert failures(tmp_path / "nothing-reported") == ""


def test_a_setting_that_does_not_fit_stops_start_up_naming_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fhir_server", "serve", "--port", "1",
                           "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FHIR_HEADER_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert "FHIR_HEADER_TIMEOUT must be a number, not 'soon'" in done.stderr
