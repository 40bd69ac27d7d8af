"""Realistic alliance transaction Bundles for ingest benchmarks (no external data needed).

Each Bundle is one patient's visit at a member hospital: the Patient (resident ID with a
valid check digit), a Condition, a referral ServiceRequest and its Task, a lab
DiagnosticReport with its Observations (LOINC + UCUM, HR tag), and a Provenance, all
linked by ``urn:uuid`` references to one shared Organization and Practitioner.
"""

from __future__ import annotations

import random
import uuid

from fhir_server.validation.identifiers import id_card_check

LABS = [("2345-7", "葡萄糖", "mmol/L", 3.9, 11.0), ("2823-3", "钾", "mmol/L", 3.2, 5.6),
        ("2951-2", "钠", "mmol/L", 132, 148), ("2093-3", "总胆固醇", "mmol/L", 3.0, 7.5),
        ("4548-4", "糖化血红蛋白", "%", 4.5, 9.8), ("1751-7", "白蛋白", "g/L", 30, 52),
        ("2160-0", "肌酐", "umol/L", 45, 140), ("3094-0", "尿素氮", "mmol/L", 2.5, 9.0)]
FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀英", "霞", "平", "刚", "桂英", "建国", "建华", "志强", "丽", "红", "文", "华"]


BASE = "http://alliance-fhir.org/fhir"


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _entry(resource: dict, full_url: str) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


def claim(bundle: dict) -> dict:
    """The same visit, each resource claiming its alliance profile (with what they need)."""
    profiles = {"Patient": "AlliancePatient", "ServiceRequest": "AllianceReferral",
                "Task": "AllianceReferralTask", "DiagnosticReport": "AllianceLabReport",
                "Observation": "AllianceLabResult"}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        name = profiles.get(resource["resourceType"])
        if name is None:
            continue
        meta = resource.setdefault("meta", {})
        meta["profile"] = [f"{BASE}/StructureDefinition/{name}"]
        if name == "AllianceReferral":  # up from the grassroots to the lead hospital
            resource["performer"] = [{"reference": "Organization/lead-cardiology"}]
            resource["extension"] = [{"url": f"{BASE}/StructureDefinition/referral-direction",
                                      "valueCoding": {"system": f"{BASE}/CodeSystem/"
                                                      "referral-direction", "code": "up"}}]
        elif name == "AllianceReferralTask":
            resource["owner"] = {"reference": "Organization/lead"}
            resource["authoredOn"] = "2026-11-01"
            resource["basedOn"] = [resource["focus"]]
        elif name == "AllianceLabReport":
            resource["issued"] = "2026-11-12T10:00:00+08:00"
    return bundle


def visit_bundle(rng: random.Random, org: str, practitioner: str, labs: int = 8) -> dict:
    """One transaction Bundle of 5 + ``labs`` resources referencing ``org``/``practitioner``;
    dates spread over 2025-2026."""
    patient, condition, referral, report = _urn(), _urn(), _urn(), _urn()
    day = f"{rng.choice((2025, 2026))}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    when = f"{day}T{rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}:00+08:00"
    birth = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    first17 = "500112" + birth.replace("-", "") + f"{rng.randint(0, 999):03d}"
    subject = {"reference": patient}
    observations = []
    for code, name, unit, low, high in rng.sample(LABS, min(labs, len(LABS))):
        observations.append(({
            "resourceType": "Observation", "status": "final",
            "meta": {"tag": [{"system": "http://alliance-fhir.org/fhir/CodeSystem/"
                              "result-recognition", "code": "HR"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
            "subject": subject, "effectiveDateTime": when,
            "performer": [{"reference": org}],
            "valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit},
        }, _urn()))
    resources = [
        ({"resourceType": "Patient",
          "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                          "value": first17 + id_card_check(first17)}],
          "name": [{"family": (family := rng.choice(FAMILY)),
                    "given": [given := rng.choice(GIVEN)], "text": family + given}],
          "gender": rng.choice(["male", "female"]), "birthDate": birth,
          "managingOrganization": {"reference": org}}, patient),
        ({"resourceType": "Condition",
          "code": {"coding": [{"system": "http://alliance-fhir.org/fhir/CodeSystem/icd10-cn",
                               "code": "I10.x00x002", "display": "高血压3级"}]},
          "subject": subject}, condition),
        ({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
          "priority": rng.choice(["routine"] * 9 + ["stat"]), "subject": subject,
          "authoredOn": day,
          "requester": {"reference": practitioner}, "performer": [{"reference": org}],
          "reasonReference": [{"reference": condition}]}, referral),
        ({"resourceType": "Task", "status": "requested", "intent": "order",
          "focus": {"reference": referral}, "owner": {"reference": org}}, _urn()),
        ({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "生化检验"},
          "subject": subject, "performer": [{"reference": org}], "effectiveDateTime": when,
          "result": [{"reference": urn} for _, urn in observations]}, report),
        *observations,
    ]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [_entry(r, url) for r, url in resources]}
