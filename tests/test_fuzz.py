"""The bounded fuzz campaign: mutated official examples sent as creates, updates,
$validate, damaged bytes and Bundles, and every input a campaign ever broke the server
with (tests/data/fuzz/), replayed. Not one may answer 5xx.

``FHIR_FUZZ_SEED`` picks another campaign (the default is fixed, so CI is repeatable);
``benchmarks/bench_fuzz.py`` runs longer ones. A failure prints the inputs: save each as
a file in tests/data/fuzz/ once fixed.
"""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import orjson
import pytest
from fuzzing import Attempt, attempts, encode
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.core.registry import r4_resource_types
from fhir_server.tools import r4_package

CORPUS = Path(__file__).parent / "data" / "fuzz"
JSON = {"content-type": "application/fhir+json"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    with Client(build_app(Settings(storage=f"sqlite:///{db}", check_references=False))) as client:
        yield client


def _server_errors(client: Client, inputs: list[Attempt]) -> list[str]:
    return [f"{response.status_code} {attempt.describe()}" for attempt in inputs
            if (response := client.request(attempt.method, attempt.url, content=attempt.body,
                                            headers=JSON)).status_code >= 500]


def _saved(path: Path) -> Attempt:
    case = orjson.loads(path.read_bytes())
    body = base64.b64decode(case["body_base64"]) if "body_base64" in case \
        else encode(case["body"])
    return Attempt(case["method"], case["url"], body)


def test_mutated_official_examples_never_answer_5xx(fuzzed):
    rng = random.Random(int(os.environ.get("FHIR_FUZZ_SEED", "20261201")))
    paths = [p for rtype in r4_resource_types() for p in r4_package.examples(rtype)
             if p.stat().st_size < 100_000]
    examples = [orjson.loads(p.read_bytes()) for p in rng.sample(paths, 150)]
    inputs = list(attempts(examples, 10, rng))
    assert len(inputs) == 1500
    assert _server_errors(fuzzed, inputs) == []


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda p: p.stem)
def test_inputs_that_once_broke_the_server(fuzzed, path):
    assert _server_errors(fuzzed, [_saved(path)]) == []
