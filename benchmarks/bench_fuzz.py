"""The fuzz campaign's figure: how many mutated requests, how fast, how many 5xx.

``python3 benchmarks/bench_fuzz.py --seeds 3 --examples 2000``: for each seed, the given
number of official R4 examples (``hl7.fhir.r4.examples``, fetched and cached), 10 mutated
requests each (tests/fuzzing.py), through the ASGI app in this process. Prints a Markdown
row per seed and each failing input (save it in tests/data/fuzz/ once fixed).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzzing import attempts
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.core.registry import r4_resource_types
from fhir_server.tools import r4_package


def campaign(seed: int, count: int) -> tuple[int, float, list[str]]:
    rng = random.Random(seed)
    paths = [p for t in r4_resource_types() for p in r4_package.examples(t)
             if p.stat().st_size < 200_000]
    examples = [orjson.loads(p.read_bytes()) for p in rng.sample(paths, min(count, len(paths)))]
    failures, sent = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage=f"sqlite:///{tmp}/fuzz.db", check_references=False)
        with Client(build_app(settings)) as client:
            started = time.perf_counter()
            for attempt in attempts(examples, 10, rng):
                sent += 1
                response = client.request(attempt.method, attempt.url, content=attempt.body,
                                          headers={"content-type": "application/fhir+json"})
                if response.status_code >= 500:
                    failures.append(attempt.describe())
            return sent, time.perf_counter() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("fhir_server").setLevel(logging.CRITICAL)  # 500s are counted here
    print("| seed | requests | seconds | 5xx |\n| --- | --- | --- | --- |")
    for seed in range(1, args.seeds + 1):
        sent, seconds, failures = campaign(seed, args.examples)
        print(f"| {seed} | {sent:,} | {seconds:.1f} | {len(failures)} |")
        for failure in failures:
            print(f"    {failure}", file=sys.stderr)


if __name__ == "__main__":
    main()
