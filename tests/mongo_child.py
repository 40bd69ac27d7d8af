"""The REST and search suites again on MongoDB, in a child pytest started as soon as the
main run has collected its tests: it runs beside them (on two cores, the main run and
SecantusDB rarely keep both busy) and ``tests/storage/test_mongo_suites.py`` waits for
its verdict.

Left out of the child run, to keep the whole suite near fifteen minutes on two cores:
tests marked ``volume`` (thousands of resources each: minutes on SecantusDB, whose every
write goes through Python) and the modules whose subject is not storage (documentation,
limits of the HTTP layer, validation messages, the referral state table, whose storage
part is the contract suite's); ``sqlite_only`` tests skip themselves.
``python3 -m pytest --storage mongodb tests/rest tests/search`` runs all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "tests/rest/test_crud.py", "tests/rest/test_conditional.py",
    "tests/rest/test_transaction.py", "tests/rest/test_history_and_search.py",
    "tests/rest/test_patch.py", "tests/rest/test_everything.py",
    "tests/rest/test_expunge.py", "tests/rest/test_interop.py",
    "tests/rest/test_referral_tier.py", "tests/rest/test_synthea.py",
    "tests/rest/test_referral_kpis.py", "tests/rest/test_referral_deadlines.py",
    "tests/rest/test_subscriptions.py",
    "tests/search/test_conformance.py", "tests/search/test_alliance_search.py",
    "tests/search/test_bad_queries.py", "tests/search/test_results.py",
    "tests/search/test_include_types.py",
]
WAITER = "test_the_rest_and_search_suites_pass_on_mongodb"
TIMEOUT_SECONDS = 1800
KEY = pytest.StashKey["ChildRun"]()


@dataclass
class ChildRun:
    process: subprocess.Popen[bytes]
    output: IO[bytes]

    def verdict(self) -> tuple[int, str]:
        """Wait for the child; its exit code and the end of its output."""
        code = self.process.wait(timeout=TIMEOUT_SECONDS)
        self.output.seek(0)
        return code, self.output.read().decode("utf-8", "replace")[-10000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.output.close()


def start(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the child run when the main run will wait for it (its test was selected, and
    the main run is not on MongoDB itself)."""
    if config.getoption("--storage") == "mongodb" or not any(
            item.name == WAITER for item in items):
        return
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by ChildRun.stop, at the end)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not volume",
         *MODULES], cwd=ROOT, env={**os.environ, "FHIR_TEST_STORAGE": "mongodb"},
        stdout=output, stderr=subprocess.STDOUT)
    config.stash[KEY] = ChildRun(process, output)


def started(config: pytest.Config) -> ChildRun | None:
    return config.stash.get(KEY, None)


def stop(config: pytest.Config) -> None:
    """At the end of the main run: a child still running (the run was cut short) is killed."""
    run = started(config)
    if run is not None:
        run.stop()
