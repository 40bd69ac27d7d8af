"""Our validator against the HL7 validator on official examples and systematic mutations of
them: each case gets both verdicts (errors or none), judged on the rules both can see.

The bases are official R4 examples of many types; each mutation breaks one kind of rule
(a code outside a required binding, a code its CodeSystem does not have, a malformed
primitive, a required element removed, two invariants broken (dom-3, per-1), an unknown
extension, an extension outside its context, unsafe narrative, a bad Bundle). The HL7 validator
runs offline with no terminology server; findings that need what a lone file cannot have
(the resources it refers to, a registry of canonical URLs, the policy on example domains)
are set aside for both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from public_validators import hl7_errors

from fhir_server.tools import r4_package
from fhir_server.validation.check import Checks, check_resource
from fhir_server.validation.structure import r4_table

BASES = (  # official examples the alliance's work resembles, and a few others
    "Patient-example", "Patient-ch-example", "Practitioner-example", "Organization-hl7",
    "Observation-example", "Observation-glasgow", "Observation-blood-pressure",
    "Encounter-example", "Condition-example", "DiagnosticReport-ultrasound",
    "ServiceRequest-example", "ImagingStudy-example", "Specimen-101",
    "MedicationRequest-medrx0311", "AllergyIntolerance-example", "Immunization-example",
    "Procedure-example", "CarePlan-example", "Location-1", "Questionnaire-f201",
    "Appointment-example", "Task-example1", "Consent-consent-example-basic",
    "RiskAssessment-genetic", "Bundle-bundle-example",
    "Patient-pat1", "Patient-f001", "Practitioner-f001", "Organization-f001", "Observation-f001",
    "Observation-bmi", "Observation-heart-rate", "Encounter-f001", "Condition-f001",
    "Procedure-f001", "MedicationRequest-medrx0302",
    "Immunization-historical", "AllergyIntolerance-medication", "ServiceRequest-lipid",
    "Specimen-sst", "ImagingStudy-example-xr", "Composition-example", "CarePlan-f001",
    "Appointment-2docs", "Group-101", "Device-example", "Medication-med0301",
    "Coverage-9876B1", "Claim-100150", "EpisodeOfCare-example", "Location-2",
    "PractitionerRole-example", "Observation-10minute-apgar-score", "DocumentReference-example",
    "Goal-example", "FamilyMemberHistory-father", "MedicationAdministration-medadminexample03",
    "Task-example2", "QuestionnaireResponse-f201", "Bundle-101",
)
# Findings neither side can judge from a lone file, set aside (a fragment of the message).
OUT_OF_SCOPE = (
    "Unable to resolve resource with reference",  # the referred resources are elsewhere
    "Example URLs are not allowed",  # the HL7 validator's policy on example domains
    "No definition could be found for URL value",  # a registry of canonical URLs
    "can't be loaded", "could not be resolved", "is not a valid Canonical URL",
    "Canonical URLs must be absolute URLs",
    "TerminologyClientContext",  # the HL7 validator failing inside without a terminology server
)
UNKNOWN_EXTENSION = "http://fhir.yilianti.cn/StructureDefinition/not-defined"
OWN_PREFIX = "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix"
SCRIPT = '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="steal()">x</p></div>'


def _wrong_code(resource: dict) -> dict | None:
    if "status" in resource and isinstance(resource["status"], str):
        return {**resource, "status": "not-a-status"}
    if "gender" in resource:
        return {**resource, "gender": "males"}
    return None


def _wrong_primitive(resource: dict) -> dict | None:
    return {**resource, "meta": {**resource.get("meta", {}), "lastUpdated": "2026-13-01"}}


def _missing_required(resource: dict) -> dict | None:
    rules = r4_table().rules(resource["resourceType"])
    for name in rules.required if rules else ():
        names = rules.choices.get(name, (name,)) if rules else (name,)
        present = [n for n in names if n in resource]
        if present:
            return {k: v for k, v in resource.items() if k not in present}
    return None


def _broken_invariant(resource: dict) -> dict | None:
    """dom-3: a contained resource nothing refers to."""
    if resource["resourceType"] in ("Bundle", "Parameters", "Binary"):
        return None
    orphan = {"resourceType": "Organization", "id": "orphan", "name": "乡镇卫生院"}
    return {**resource, "contained": [*resource.get("contained", []), orphan]}


def _unknown_extension(resource: dict) -> dict | None:
    extension = {"url": UNKNOWN_EXTENSION, "valueString": "x"}
    return {**resource, "extension": [*resource.get("extension", []), extension]}


def _extension_out_of_context(resource: dict) -> dict | None:
    """A core extension whose context is HumanName, put on the resource itself."""
    extension = {"url": OWN_PREFIX, "valueString": "van"}
    return {**resource, "extension": [*resource.get("extension", []), extension]}


def _unknown_code(resource: dict) -> dict | None:
    """A tag naming a code its core CodeSystem (complete content) does not have."""
    tag = {"system": "http://hl7.org/fhir/administrative-gender", "code": "males"}
    meta = resource.get("meta", {})
    return {**resource, "meta": {**meta, "tag": [*meta.get("tag", []), tag]}}


def _period_backwards(resource: dict) -> dict | None:
    """per-1: an identifier's period that ends before it starts."""
    rules = r4_table().rules(resource["resourceType"])
    if rules is None or "identifier" not in rules.elements:
        return None
    identifier = {"system": "urn:oid:2.16.156", "value": "x",
                  "period": {"start": "2026-02-01", "end": "2026-01-01"}}
    if rules.elements["identifier"].max == 1:
        return {**resource, "identifier": identifier}
    return {**resource, "identifier": [*resource.get("identifier", []), identifier]}


def _unsafe_narrative(resource: dict) -> dict | None:
    if resource["resourceType"] in ("Bundle", "Parameters", "Binary"):
        return None
    return {**resource, "text": {"status": "generated", "div": SCRIPT}}


def _bad_bundle(resource: dict) -> dict | None:
    inner = copy.deepcopy(resource)
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"{inner['resourceType']}/{inner.get('id', 'x')}", "resource": inner}]}


MUTATIONS: dict[str, Callable[[dict], dict | None]] = {
    "wrong-code": _wrong_code, "wrong-primitive": _wrong_primitive,
    "missing-required": _missing_required, "broken-invariant": _broken_invariant,
    "unknown-extension": _unknown_extension,
    "extension-out-of-context": _extension_out_of_context, "unknown-code": _unknown_code,
    "period-backwards": _period_backwards, "unsafe-narrative": _unsafe_narrative,
    "bad-bundle": _bad_bundle,
}


@dataclass(frozen=True)
class Case:
    name: str  # base~mutation ("~original" for the base itself)
    mutation: str
    ours: list[str]
    theirs: list[str]

    @property
    def agrees(self) -> bool:
        return bool(self.ours) == bool(self.theirs)


def write_corpus(folder: Path) -> list[Path]:
    """The bases and their mutations as files (``Base~mutation.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for base in BASES:
        original = orjson.loads((r4_package.package_dir() / f"{base}.json").read_bytes())
        for mutation, make in {"original": lambda r: r, **MUTATIONS}.items():
            mutated = make(copy.deepcopy(original))
            if mutated is None:
                continue
            path = folder / f"{base}~{mutation}.json"
            path.write_bytes(orjson.dumps(mutated))
            paths.append(path)
    return paths


def _in_scope(message: str) -> bool:
    return not any(fragment in message for fragment in OUT_OF_SCOPE)


def compare(hl7: Path, folder: Path, checks: Checks) -> list[Case]:
    """Both verdicts on every case of the corpus written to ``folder``."""
    paths = write_corpus(folder)
    theirs = hl7_errors(hl7, [], paths)
    cases = []
    for path in paths:
        resource = orjson.loads(path.read_bytes())
        ours = [f"{i.expression}|{i.diagnostics}" for i in check_resource(checks, resource)
                if i.severity in ("error", "fatal") and _in_scope(i.diagnostics)]
        hl7_found = [e for e in theirs[str(path)] if _in_scope(e)]
        cases.append(Case(path.stem, path.stem.split("~")[1], ours, hl7_found))
    return cases
