"""Validation time per resource for each alliance profile (issue 5 figure).

``python3 benchmarks/bench_profiles.py``: every demo resource, grouped by the profile it
claims, checked the way a write checks it (R4 structure, identifier rules, alliance
extensions, the claimed profile), best of 5 runs of 200 rounds.
"""

from __future__ import annotations

import time
from collections import defaultdict

import orjson

from fhir_server.config import Settings
from fhir_server.package import AlliancePackage, demo_folder
from fhir_server.validation.check import Checks, check_resource


def main() -> None:
    settings = Settings()
    package = AlliancePackage.load(settings)
    checks = Checks.from_package(package.profiles, package.terminology)
    bundle = orjson.loads((demo_folder() / "alliance-demo.json").read_bytes())
    groups: dict[str, list[dict]] = defaultdict(list)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        claimed = (resource.get("meta") or {}).get("profile") or ["(none)"]
        groups[claimed[0].rsplit("/", 1)[-1]].append(resource)
    print("| profile | resources | µs per resource (best of 5) | of which structure µs |")
    print("| --- | --- | --- | --- |")
    for name, resources in sorted(groups.items()):
        total = structure = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                for resource in resources:
                    assert not [i for i in check_resource(checks, resource)
                                if i.severity == "error"]
            total = min(total, (time.perf_counter() - started) / 200 / len(resources) * 1e6)
            started = time.perf_counter()
            for _ in range(200):
                for resource in resources:
                    checks.structure.validate(resource)
            structure = min(structure,
                            (time.perf_counter() - started) / 200 / len(resources) * 1e6)
        print(f"| {name} | {len(resources)} | {total:.0f} | {structure:.0f} |")


if __name__ == "__main__":
    main()
