"""Structure validation time per resource: official R4 examples per type and alliance data.

``python3 benchmarks/bench_validation.py`` (fetches hl7.fhir.r4.examples@4.0.1 once).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alliance_bundles import visit_bundle

from fhir_server.tools import r4_package
from fhir_server.validation.structure import StructureValidator


def per_resource_us(validator: StructureValidator, resource: dict, rounds: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        validator.validate(resource)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    validator = StructureValidator()
    print("| resources | count | median µs | mean µs | max µs |")
    print("| --- | --- | --- | --- | --- |")
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
    for name, resources in rows.items():
        times = [per_resource_us(validator, r) for r in resources]
        print(f"| {name} | {len(times)} | {statistics.median(times):.0f} | "
              f"{statistics.mean(times):.0f} | {max(times):.0f} |")


if __name__ == "__main__":
    main()
