"""Figure of issue 14: agreement with the HL7 validator on the mutation corpus.

``python3 benchmarks/bench_agreement.py`` (Java and Maven fetch the HL7 validator once).
Runs the corpus of ``tests/differential.py`` (official examples and one mutation per kind of
rule) through both validators and prints, per mutation kind, how many verdicts agree, and
every case that differs with both sides' first findings.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from differential import compare
from public_validators import hl7_dir

from fhir_server.config import Settings
from fhir_server.package import AlliancePackage
from fhir_server.validation.check import Checks


def main() -> None:
    folder = hl7_dir()
    if folder is None:
        raise SystemExit("Java and Maven are needed for the HL7 validator")
    package = AlliancePackage.load(Settings())
    checks = Checks.from_package(package.profiles, package.terminology)
    with tempfile.TemporaryDirectory() as work:
        cases = compare(folder, Path(work), checks)
    total, agreed = Counter(c.mutation for c in cases), Counter(
        c.mutation for c in cases if c.agrees)
    print("| mutation | cases | verdicts agree |\n| --- | --- | --- |")
    for mutation in total:
        print(f"| {mutation} | {total[mutation]} | {agreed[mutation]} |")
    share = sum(agreed.values()) / len(cases)
    print(f"\nagreement: {sum(agreed.values())} of {len(cases)} cases ({share:.1%})")
    for case in cases:
        if not case.agrees:
            print(f"- {case.name}: ours {case.ours[:1]}, HL7 {case.theirs[:1]}")


if __name__ == "__main__":
    main()
