"""Structure validation and search index extraction time per resource: official R4
examples per type and alliance data.

``python3 benchmarks/bench_validation.py`` (fetches hl7.fhir.r4.examples@4.0.1 once).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alliance_bundles import visit_bundle

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.tools import r4_package
from fhir_server.validation.structure import StructureValidator


def per_resource_us(run: Callable[[dict], object], resource: dict, rounds: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        run(resource)
    return (time.perf_counter() - started) / rounds * 1e6


def table(title: str, run: Callable[[dict], object], rows: dict[str, list[dict]]) -> None:
    print(f"\n{title}\n\n| resources | count | median µs | mean µs | max µs |")
    print("| --- | --- | --- | --- | --- |")
    for name, resources in rows.items():
        for resource in resources:  # first calls load tables (UCUM, pinyin) once
            run(resource)
        times = [per_resource_us(run, r) for r in resources]
        print(f"| {name} | {len(times)} | {statistics.median(times):.0f} | "
              f"{statistics.mean(times):.0f} | {max(times):.0f} |")


def main() -> None:
    rng = random.Random(1)
    alliance = [e["resource"] for _ in range(20)
                for e in visit_bundle(rng, "Organization/o", "PractitionerRole/r")["entry"]]
    rows = {"alliance visit bundles (Patient, Condition, ServiceRequest, Task, "
            "DiagnosticReport, Observation)": alliance}
    for rtype in ("Patient", "Organization", "Practitioner", "Observation", "DiagnosticReport",
                  "ServiceRequest", "ImagingStudy", "Condition", "Task"):
        rows[f"official {rtype} examples"] = [
            r for r in (orjson.loads(p.read_bytes()) for p in r4_package.examples(rtype))
            if r.get("resourceType") == rtype]
    table("Structure validation", StructureValidator().validate, rows)
    with tempfile.TemporaryDirectory() as work:  # the server's registry and indexer
        service = build_service(Settings(storage=f"sqlite:///{work}/extract.db"))
        table("Search index extraction (target ≤ 50 µs)", service.indexer.rows, rows)


if __name__ == "__main__":
    main()
