"""Our validator, the HL7 FHIR validator and @medplum/core agree on every example.

Where a public validator cannot see a rule (check characters; for @medplum/core also
extensions of resources that declare no profile) the file is listed in NOT_SEEN_BY_HL7 or
NOT_SEEN_BY_MEDPLUM, with the reason. The package itself (profiles/, terminology/) must
pass both.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from public_validators import hl7_dir, hl7_errors, medplum_dir, medplum_errors

from fhir_server.config import Settings
from fhir_server.package import AlliancePackage, packaged_folder
from fhir_server.validation.check import Checks, check_resource

ROOT = Path(__file__).resolve().parent.parent
PROFILES = packaged_folder("profiles")
TERMINOLOGY = packaged_folder("terminology")
PACKAGE = AlliancePackage.load(Settings())
NOT_SEEN_BY_MEDPLUM = {  # file: why @medplum/core passes it
    "invalid-uscc-check-character.json": "check characters are not StructureDefinition rules",
    "invalid-resident-id-check-character.json": "check characters, as above",
    "invalid-resident-id-birth-date.json": "a rule across two elements outside any profile",
    "invalid-referral-direction-type.json": "extension rules apply through a declared profile",
    "invalid-recognition-without-scope.json": "extension rules apply through a profile",
    "invalid-ethnicity-on-organization.json": "extension context is not checked",
    "invalid-referral-without-direction.json": "a required slice of an element that is "
                                               "absent altogether is not counted",
    "invalid-imaging-modality-system.json": "a pattern value on an element inside a "
                                            "backbone element is not checked",
    "invalid-referral-requester-organization.json": "reference target types are not "
                                                    "checked",
}

NOT_SEEN_BY_HL7 = {  # file: why the HL7 validator passes it
    "invalid-uscc-check-character.json": "check characters are not StructureDefinition rules",
    "invalid-resident-id-check-character.json": "check characters, as above",
    "invalid-resident-id-birth-date.json": "a rule across two elements outside any profile",
}
# a single file's references point at resources outside it: not a fault of the example
UNRESOLVABLE = "Unable to resolve resource with reference"


def _files() -> list[Path]:
    files = [ROOT / "examples" / "demo" / "alliance-demo.json"]
    files += sorted(p for p in (ROOT / "examples" / "invalid").glob("invalid-*.json")
                    if not p.name.endswith(".expected.json"))
    files += sorted(p for p in PROFILES.glob("*.json")
                    if p.name not in ("package.json", ".index.json"))
    return files + sorted(TERMINOLOGY.glob("*.json"))


def _ours(path: Path, checks: Checks) -> bool:
    document = orjson.loads(path.read_bytes())
    resources = [e["resource"] for e in document.get("entry", [])] \
        if document.get("resourceType") == "Bundle" else [document]
    return any(i.severity == "error" for r in resources
               for i in check_resource(checks, r))


def test_verdicts_agree():
    folder = medplum_dir()
    if folder is None:
        pytest.skip("npm/node are not installed")
    files = _files()
    theirs = medplum_errors(folder, PROFILES, files)
    checks = Checks.from_package(PACKAGE.profiles, PACKAGE.terminology)
    for path in files:
        ours = _ours(path, checks)
        medplum = bool(theirs[str(path)])
        assert ours == path.name.startswith("invalid-"), path.name
        if path.name in NOT_SEEN_BY_MEDPLUM:
            assert not medplum, f"{path.name}: @medplum/core now sees it; update the list"
        else:
            assert medplum == ours, (path.name, theirs[str(path)])


def test_hl7_validator_agrees():
    folder = hl7_dir()
    if folder is None:
        pytest.skip("Java and Maven are not installed")
    files = _files()
    theirs = hl7_errors(folder, [PROFILES, TERMINOLOGY], files)
    checks = Checks.from_package(PACKAGE.profiles, PACKAGE.terminology)
    for path in files:
        ours = _ours(path, checks)
        hl7 = [e for e in theirs[str(path)] if UNRESOLVABLE not in e]
        assert ours == path.name.startswith("invalid-"), path.name
        if path.name in NOT_SEEN_BY_HL7:
            assert not hl7, f"{path.name}: the HL7 validator now sees it; update the list"
        else:
            assert bool(hl7) == ours, (path.name, hl7)
