"""Generate the alliance extensions and the package files of ``profiles/``.

Writes ``StructureDefinition-<id>.json`` for each extension (differential, and the snapshot
from ``fhir_server.tools.snapshot``), then ``package.json`` (``alliance.fhir.core``) and
``.index.json`` over every resource in ``profiles/`` (the SearchParameters included).
Run: ``python scripts/generate_profiles.py`` (fetches the R4 package once).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_server.tools import r4_package
from fhir_server.tools.snapshot import extension_snapshot, resource_snapshot

OUT = Path(__file__).resolve().parent.parent / "profiles"
BASE = "http://alliance-fhir.org/fhir"
VERSION = "0.1.0"

# id: (中文 / English title, definition, value types, contexts)
SIMPLE = {
    "hospital-level": ("医院级别 / Hospital level", "The hospital's level (一级, 二级, 三级).",
                       ["Coding"], ["Organization"]),
    "hospital-grade": ("医院等次 / Hospital grade",
                       "The hospital's grade (甲, 乙, 丙, 特等, 未定级).",
                       ["Coding"], ["Organization"]),
    "alliance-role": ("医联体角色 / Alliance role", "Lead institution or member of the alliance.",
                      ["Coding"], ["OrganizationAffiliation"]),
    "alliance-closeness": ("紧密程度 / Alliance closeness", "A close or a loose alliance.",
                           ["Coding"], ["OrganizationAffiliation"]),
    "referral-direction": ("转诊方向 / Referral direction", "Upward or downward referral.",
                           ["Coding"], ["ServiceRequest"]),
    "referral-accepted": ("转诊接受时间 / Referral accepted",
                          "When the receiving organisation accepted the referral: the time "
                          "of the Task version that set it accepted (set by the server, or "
                          "as recorded by the system a referral is imported from).",
                          ["dateTime"], ["Task"]),
    "referral-graded-kpi": ("考核指标 / Graded figure",
                            "The referral-kpi code of the figure the grade bands apply to.",
                            ["code"], ["Measure"]),
    "referral-grade": ("转诊考核等级 / Referral grade",
                       "The grade (优良中差) of a member's monthly referral figures.",
                       ["Coding"], ["MeasureReport.group"]),
    "subscription-owner": ("订阅所有者 / Subscription owner",
                           "The user who subscribed (set by the server with auth on): "
                           "notifications carry only what this user may read.",
                           ["Reference"], ["Subscription"]),
    "ethnicity": ("民族 / Ethnicity", "The patient's ethnic group (GB 3304).",
                  ["Coding"], ["Patient"]),
    "division-code": ("行政区划代码 / Division code",
                      "The GB/T 2260 code of the address's division (6, 9 or 12 digits).",
                      ["code"], ["Address"]),
    "practice-kind": ("执业类型 / Practice kind",
                      "Primary site, multi-site practice (多点执业) or visiting expert (专家坐诊).",
                      ["code"], ["PractitionerRole"]),
    "access-tier": ("访问层级 / Access tier",
                    "What a user of this role sees: their own patients, their organisation's "
                    "or the whole alliance's (CodeSystem access-tier).",
                    ["code"], ["PractitionerRole"]),
    "audit-sequence": ("审计链序号 / Audit chain sequence",
                       "The place of this AuditEvent in the server's audit chain.",
                       ["integer"], ["AuditEvent"]),
    "audit-previous-hash": ("审计链前哈希 / Previous link's hash",
                            "The SHA-256 (hex) of the stored bytes of the AuditEvent before "
                            "this one in the audit chain.", ["string"], ["AuditEvent"]),
    "retest-reason": ("复查理由 / Re-test reason",
                      "Why the receiving doctor repeats a recognisable result.",
                      ["CodeableConcept"], ["Task"]),
    "recognition-validity": ("互认有效期 / Recognition validity",
                             "How long a result stays recognisable after it was issued.",
                             ["Duration"], ["Observation", "DiagnosticReport"]),
    "search-normalizer": ("检索归一化 / Search normalizer",
                          "How a string search parameter folds values (pinyin).",
                          ["code"], ["SearchParameter"]),
}
RECOGNITION = ("result-recognition", "检查检验结果互认 / Mutual recognition of results",
               "The HR mark of a result that passed quality control, with its scope, "
               "the quality-control organisation and the assessment year.",
               [("mark", ["Coding"], 1), ("scope", ["Coding"], 1),
                ("qc-organization", ["Reference"], 0), ("assessment-year", ["positiveInt"], 0)],
               ["DiagnosticReport", "Observation", "ImagingStudy"])
GRADE_BAND = ("referral-grade-band", "转诊考核分档 / Referral grade band",
              "One band of the monthly referral grade (优良中差): the grade a member gets when "
              "the graded figure is at least the minimum (the highest band reached wins).",
              [("grade", ["Coding"], 1), ("minimum", ["decimal"], 1)], ["Measure"])
COMPLEX = (RECOGNITION, GRADE_BAND)


def _root(title: str, definition: str) -> dict:
    return {"id": "Extension", "path": "Extension", "short": title, "definition": definition,
            "min": 0, "max": "1"}


def _value(path_id: str, path: str, types: list[str], minimum: int = 1) -> dict:
    return {"id": path_id, "path": path, "min": minimum, "type": [{"code": t} for t in types]}


def _definition(ext_id: str, title: str, definition: str, contexts: list[str],
                differential: list[dict], base: list[dict]) -> dict:
    return {
        "resourceType": "StructureDefinition", "id": ext_id, "url": f"{BASE}/"
        f"StructureDefinition/{ext_id}", "version": VERSION,
        "name": "".join(p.title() for p in ext_id.split("-")), "title": title,
        "status": "active", "publisher": "alliance-fhir-server", "description": definition,
        "fhirVersion": "4.0.1", "kind": "complex-type", "abstract": False,
        "context": [{"type": "element", "expression": c} for c in contexts],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "snapshot": {"element": extension_snapshot(base, differential)},
        "differential": {"element": differential},
    }


def simple(ext_id: str, base: list[dict]) -> dict:
    title, definition, types, contexts = SIMPLE[ext_id]
    url = f"{BASE}/StructureDefinition/{ext_id}"
    differential = [_root(title, definition),
                    {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                    {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                    _value("Extension.value[x]", "Extension.value[x]", types)]
    return _definition(ext_id, title, definition, contexts, differential, base)


def complex_extension(spec: tuple, base: list[dict]) -> dict:
    ext_id, title, definition, parts, contexts = spec
    url = f"{BASE}/StructureDefinition/{ext_id}"
    differential = [_root(title, definition),
                    {"id": "Extension.extension", "path": "Extension.extension", "min": 1,
                     "slicing": {"discriminator": [{"type": "value", "path": "url"}],
                                 "rules": "open"}}]
    for name, types, minimum in parts:
        slice_id = f"Extension.extension:{name}"
        differential += [
            {"id": slice_id, "path": "Extension.extension", "sliceName": name,
             "min": minimum, "max": "1"},
            {"id": f"{slice_id}.extension", "path": "Extension.extension.extension",
             "max": "0"},
            {"id": f"{slice_id}.url", "path": "Extension.extension.url", "fixedUri": name},
            _value(f"{slice_id}.value[x]", "Extension.extension.value[x]", types)]
    differential += [{"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                     {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"}]
    return _definition(ext_id, title, definition, contexts, differential, base)


def _slice_by_url(path: str) -> dict:
    return {"id": path, "path": path,
            "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}}


def _extension_slice(path: str, name: str, minimum: int) -> list[dict]:
    url = f"{BASE}/StructureDefinition/{name}"
    return [{"id": f"{path}:{name}", "path": path, "sliceName": name, "min": minimum,
             "max": "1", "type": [{"code": "Extension", "profile": [url]}]},
            {"id": f"{path}:{name}.url", "path": f"{path}.url", "short": "identifies the "
             "extension", "definition": "The url of the extension this slice holds.",
             "min": 1, "max": "1", "base": {"path": "Extension.url", "min": 1, "max": "1"},
             "type": [{"code": "uri"}], "fixedUri": url}]


def _identifier_slice(path: str, name: str, system: str, maximum: str = "1") -> list[dict]:
    return [{"id": path, "path": path, "slicing": {
                "discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"}},
            {"id": f"{path}:{name}", "path": path, "sliceName": name, "min": 0,
             "max": maximum, "patternIdentifier": {"system": system}}]


def _coding_slice(path: str, name: str, system: str, minimum: int) -> list[dict]:
    """Codings of a CodeableConcept sliced by code system (one coding from ``system``)."""
    return [{"id": path, "path": path, "slicing": {
                "discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"}},
            {"id": f"{path}:{name}", "path": path, "sliceName": name, "min": minimum,
             "max": "1", "patternCoding": {"system": system}}]


def _required(*paths: str) -> list[dict]:
    return [{"id": p, "path": p, "min": 1} for p in paths]


def _targets(path: str, *types: str) -> dict:
    """A reference narrowed to some target types."""
    return {"id": path, "path": path, "type": [{"code": "Reference", "targetProfile": [
        f"http://hl7.org/fhir/StructureDefinition/{t}" for t in types]}]}


def _binding(path: str, value_set: str, strength: str = "required") -> dict:
    return {"id": path, "path": path, "binding": {
        "strength": strength, "valueSet": f"{BASE}/ValueSet/{value_set}"}}


def _invariant(rtype: str, key: str, human: str, expression: str) -> dict:
    return {"id": rtype, "path": rtype, "constraint": [{
        "key": key, "severity": "error", "human": human, "expression": expression,
        "source": f"{BASE}/StructureDefinition/Alliance{rtype}"}]}


TCM_TYPES = (f"type.coding.where(system = '{BASE}/CodeSystem/institution-type' "
             "and (code = 'A210' or code = 'A300')).exists()")

# id: (resource type, 中文 / English title, description, differential elements)
RESOURCE_PROFILES: dict[str, tuple[str, str, str, list[dict]]] = {
    "AllianceOrganization": ("Organization", "医联体机构 / Alliance organisation",
                             "A member institution (or department) of the alliance.", [
        *_identifier_slice("Organization.identifier", "uscc", f"{BASE}/sid/uscc"),
        *_required("Organization.type", "Organization.name"),
        _binding("Organization.type", "institution-type", "extensible"),
        _invariant("Organization", "alliance-org-1",
                   "A TCM hospital keeps its own identity: it is never partOf another "
                   "organisation / 中医医院保持独立法人身份，不得隶属于其他机构",
                   f"{TCM_TYPES} implies partOf.empty()")]),
    "AllianceMembership": ("OrganizationAffiliation", "医联体成员关系 / Alliance membership",
                           "A member's place in the alliance: lead or member, close or loose, "
                           "for the agreement period.", [
        _slice_by_url("OrganizationAffiliation.extension"),
        *_extension_slice("OrganizationAffiliation.extension", "alliance-role", 1),
        *_extension_slice("OrganizationAffiliation.extension", "alliance-closeness", 0),
        *_required("OrganizationAffiliation.organization",
                   "OrganizationAffiliation.participatingOrganization",
                   "OrganizationAffiliation.period")]),
    "AlliancePractitioner": ("Practitioner", "医联体医务人员 / Alliance practitioner",
                             "A physician or other professional of an alliance member.", [
        *_required("Practitioner.name")]),
    "AlliancePractitionerRole": ("PractitionerRole", "执业地点 / Alliance practice site",
                                 "Where a practitioner works: primary site, multi-site "
                                 "practice or visiting expert.", [
        _slice_by_url("PractitionerRole.extension"),
        *_extension_slice("PractitionerRole.extension", "practice-kind", 1),
        *_required("PractitionerRole.practitioner", "PractitionerRole.organization")]),
    "AllianceReferralTask": ("Task", "转诊任务 / Alliance referral task",
                             "The receiving organisation's handling of a referral.", [
        *_required("Task.focus", "Task.owner", "Task.authoredOn", "Task.basedOn"),
        _targets("Task.focus", "ServiceRequest"), _targets("Task.owner", "Organization")]),
    "AllianceImagingStudy": ("ImagingStudy", "影像检查 / Alliance imaging study",
                             "A DICOM study of a member, reviewable by the imaging centre.", [
        *_required("ImagingStudy.started", "ImagingStudy.series",
                   "ImagingStudy.series.numberOfInstances"),
        {"id": "ImagingStudy.series.modality", "path": "ImagingStudy.series.modality",
         "patternCoding": {"system": "http://dicom.nema.org/resources/ontology/DCM"}}]),
    "AllianceImagingReport": ("DiagnosticReport", "影像报告 / Alliance imaging report",
                              "A report on an imaging study (a grassroots study reviewed by "
                              "the lead hospital's imaging centre).", [
        _slice_by_url("DiagnosticReport.extension"),
        *_extension_slice("DiagnosticReport.extension", "result-recognition", 0),
        *_required("DiagnosticReport.subject", "DiagnosticReport.issued",
                   "DiagnosticReport.performer", "DiagnosticReport.imagingStudy")]),
    "AlliancePatient": ("Patient", "医联体患者 / Alliance patient",
                        "A patient with the national identifiers the alliance uses.", [
        *_identifier_slice("Patient.identifier", "residentId", "urn:oid:2.16.156.10011.1.3"),
        _slice_by_url("Patient.extension"), *_extension_slice("Patient.extension", "ethnicity", 0),
        *_required("Patient.name", "Patient.gender")]),
    "AllianceReferral": ("ServiceRequest", "双向转诊单 / Alliance referral",
                         "An upward or downward referral between alliance members.", [
        _slice_by_url("ServiceRequest.extension"),
        *_extension_slice("ServiceRequest.extension", "referral-direction", 1),
        *_required("ServiceRequest.priority", "ServiceRequest.authoredOn",
                   "ServiceRequest.requester", "ServiceRequest.performer",
                   "ServiceRequest.reasonReference"),
        _targets("ServiceRequest.requester", "PractitionerRole"),
        _targets("ServiceRequest.performer", "Organization")]),
    "AllianceLabResult": ("Observation", "互认检验结果 / Alliance lab result",
                          "A laboratory result that can carry the HR recognition mark.", [
        _slice_by_url("Observation.extension"),
        *_extension_slice("Observation.extension", "result-recognition", 0),
        # a member's local LIS code may come first; the shared LOINC code is required
        *_coding_slice("Observation.code.coding", "loinc", "http://loinc.org", 1),
        *_required("Observation.subject", "Observation.effective[x]",
                   "Observation.performer")]),
    "AllianceLabReport": ("DiagnosticReport", "互认检验报告 / Alliance lab report",
                          "A laboratory report of alliance results.", [
        _slice_by_url("DiagnosticReport.extension"),
        *_extension_slice("DiagnosticReport.extension", "result-recognition", 0),
        *_required("DiagnosticReport.subject", "DiagnosticReport.issued",
                   "DiagnosticReport.performer", "DiagnosticReport.result")]),
}


def resource_profile(profile_id: str, bases: dict[str, dict],
                     extensions: dict[str, list[dict]],
                     datatypes: dict[str, list[dict]]) -> dict:
    rtype, title, description, elements = RESOURCE_PROFILES[profile_id]
    merged: dict[str, dict] = {rtype: {"id": rtype, "path": rtype, "short": title,
                                       "definition": description}}
    for element in elements:  # several helpers may constrain one element: merge them
        merged.setdefault(element["id"], {}).update(element)
    order = {e["path"]: n for n, e in enumerate(bases[rtype]["snapshot"]["element"])}

    def place(element: dict) -> int:
        """Where the element (or, for a slice's child, its nearest listed parent) sits."""
        path = element["path"]
        while path not in order:
            path = path.rpartition(".")[0]
        return order[path]

    # a differential lists elements in the base's order (validators match them in turn)
    differential = sorted(merged.values(), key=place)
    return {
        "resourceType": "StructureDefinition", "id": profile_id,
        "url": f"{BASE}/StructureDefinition/{profile_id}", "version": VERSION,
        "name": profile_id, "title": title, "status": "active",
        "publisher": "alliance-fhir-server", "description": description,
        "fhirVersion": "4.0.1", "kind": "resource", "abstract": False, "type": rtype,
        "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        "derivation": "constraint",
        "snapshot": {"element": resource_snapshot(bases[rtype]["snapshot"]["element"],
                                                  differential, extensions, datatypes)},
        "differential": {"element": differential},
    }


def index(folder: Path) -> dict:
    files = []
    for path in sorted(folder.glob("*.json")):
        if path.name in ("package.json", ".index.json"):
            continue
        resource = orjson.loads(path.read_bytes())
        entry = {"filename": path.name, "resourceType": resource["resourceType"],
                 "id": resource["id"], "url": resource.get("url"),
                 "version": resource.get("version")}
        for key in ("kind", "type"):
            if key in resource and resource["resourceType"] == "StructureDefinition":
                entry[key] = resource[key]
        files.append(entry)
    return {"index-version": 1, "files": files}


def main() -> None:
    base = next(r for r in r4_package.bundle_resources("Bundle-types.json")
                if r["id"] == "Extension")["snapshot"]["element"]
    bases = {r["id"]: r for r in r4_package.bundle_resources("Bundle-resources.json")
             if r["resourceType"] == "StructureDefinition"}
    definitions = [*(simple(ext_id, base) for ext_id in SIMPLE),
                   *(complex_extension(spec, base) for spec in COMPLEX)]
    extensions = {d["url"]: d["snapshot"]["element"] for d in definitions}
    datatypes = {r["id"]: r["snapshot"]["element"]
                 for r in r4_package.bundle_resources("Bundle-types.json")
                 if r["resourceType"] == "StructureDefinition" and r.get("kind") == "complex-type"}
    definitions += [resource_profile(profile_id, bases, extensions, datatypes)
                    for profile_id in RESOURCE_PROFILES]
    for definition in definitions:
        path = OUT / f"StructureDefinition-{definition['id']}.json"
        path.write_bytes(orjson.dumps(definition, option=orjson.OPT_INDENT_2) + b"\n")
    package = {"name": "alliance.fhir.core", "version": VERSION, "type": "fhir.ig",
               "title": "医联体 FHIR 核心包 / Alliance FHIR core package",
               "description": "Profiles, extensions and search parameters of Chinese "
                              "regional medical alliances (医联体 / 医共体).",
               "canonical": BASE, "url": BASE, "fhirVersions": ["4.0.1"],
               "dependencies": {"hl7.fhir.r4.core": "4.0.1"}, "license": "Apache-2.0",
               "author": "alliance-fhir-server"}
    (OUT / "package.json").write_bytes(orjson.dumps(package, option=orjson.OPT_INDENT_2)
                                       + b"\n")
    (OUT / ".index.json").write_bytes(orjson.dumps(index(OUT), option=orjson.OPT_INDENT_2)
                                      + b"\n")
    print(f"wrote {len(definitions)} StructureDefinitions and the package files to {OUT}")


if __name__ == "__main__":
    main()
