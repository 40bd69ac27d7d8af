"""The REST and search suites on MongoDB: the modules below run again with ``--storage
mongodb`` (SecantusDB, or ``FHIR_TEST_MONGODB_URI``) in a child pytest, and must pass.

Left out of this run, to keep the whole suite near fifteen minutes on two cores: tests
marked ``volume`` (thousands of resources each: minutes on SecantusDB, whose every write
goes through Python) and the modules whose subject is not storage (documentation, limits of
the HTTP layer, validation messages, the referral state table, whose storage part is the
contract suite's); ``sqlite_only`` tests skip themselves.
``python3 -m pytest --storage mongodb tests/rest tests/search`` runs all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


def test_the_rest_and_search_suites_pass_on_mongodb(request: pytest.FixtureRequest):
    if request.config.getoption("--storage") == "mongodb":
        pytest.skip("this run is on MongoDB already")
    environment = {**os.environ, "FHIR_TEST_STORAGE": "mongodb"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not volume",
         *MODULES], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
