"""The REST and search suites on MongoDB: the modules of ``mongo_child.MODULES`` run again
with ``--storage mongodb`` (SecantusDB, or ``FHIR_TEST_MONGODB_URI``) in a child pytest,
started beside the main run once it has collected (tests/mongo_child.py), and must pass."""

from __future__ import annotations

import pytest
from mongo_child import started


def test_the_rest_and_search_suites_pass_on_mongodb(request: pytest.FixtureRequest):
    if request.config.getoption("--storage") == "mongodb":
        pytest.skip("this run is on MongoDB already")
    run = started(request.config)
    assert run is not None, "the child run starts when the tests are collected"
    code, output = run.verdict()
    assert code == 0, output
