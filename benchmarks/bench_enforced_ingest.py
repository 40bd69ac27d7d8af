"""Ingest with the alliance profiles enforced (issue 5 figure).

``python3 benchmarks/bench_enforced_ingest.py [--resources 100000]``: the demo alliance,
then alliance visit Bundles whose resources claim their profiles, committed in-process by
8 concurrent transactions with ``require_profiles="*"`` (every profiled type must claim
its profile and meet it), validation, integrity and indexing on. Prints resources/s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alliance_bundles import claim, visit_bundle

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.core.transaction import TransactionPlanner, parse_entry
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder


async def ingest(settings: Settings, total: int) -> tuple[int, float]:
    service = build_service(settings)
    await service.open()
    planner = TransactionPlanner(service)
    rng = random.Random(5)
    bundles = [claim(visit_bundle(rng, "Organization/gulu",
                                  "PractitionerRole/chen-jing-shuangfeng"))
               for _ in range(total // 13 + 1)]

    async def worker() -> None:
        while bundles:
            bundle = bundles.pop()
            await planner.commit([parse_entry(e, i, "") for i, e in enumerate(bundle["entry"])])

    count = len(bundles) * 13
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    seconds = time.perf_counter() - started
    await service.close()
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=100_000)
    args = parser.parse_args()
    settings = Settings(storage=f"sqlite:///{tempfile.mkdtemp()}/enforced.db",
                        require_profiles="*")
    asyncio.run(load_paths(settings, [demo_folder()]))
    count, seconds = asyncio.run(ingest(settings, args.resources))
    print(f"enforced ingest: {count:,} resources in {seconds:.1f} s = "
          f"{count / seconds:,.0f} resources/s")


if __name__ == "__main__":
    main()
