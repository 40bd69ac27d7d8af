"""Generate ``examples/demo/alliance-demo.json``: a small, coherent demo medical alliance.

One transaction Bundle of PUT entries (fixed ids, so loading twice only adds versions): a
lead tertiary hospital with two departments, a county hospital, a TCM hospital (its own
organisation, never ``partOf`` another), two township/community centres, their alliance
memberships, staff (one physician practising at two sites), patients with valid resident ID
numbers, conditions in ICD-10 national clinical edition / GB/T 15657, two upward referrals
(one green channel) and one downward referral with their Tasks, HR-marked lab reports and an
imaging study reviewed by the lead hospital. Run: ``python scripts/generate_demo.py``.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_server.validation.identifiers import id_card_check, uscc_check

OUT = Path(__file__).resolve().parent.parent / "examples" / "demo" / "alliance-demo.json"
SID = "http://alliance-fhir.org/fhir/sid"
ID_CARD = "urn:oid:2.16.156.10011.1.3"
ORG_TYPE = "http://alliance-fhir.org/fhir/CodeSystem/institution-type"
ICD10_CN = "http://alliance-fhir.org/fhir/CodeSystem/icd10-cn"
TCM = "http://alliance-fhir.org/fhir/CodeSystem/gbt15657-2021"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
EXT = "http://alliance-fhir.org/fhir/StructureDefinition"
CS = "http://alliance-fhir.org/fhir/CodeSystem"


def profile(name: str) -> dict:
    return {"profile": [f"{EXT}/{name}"]}


def coding(system: str, code: str, display: str) -> dict:
    return {"system": f"{CS}/{system}", "code": code, "display": display}


def ext(name: str, **value: object) -> dict:
    return {"url": f"{EXT}/{name}", **value}


RECOGNITION = ext("result-recognition", extension=[
    {"url": "mark", "valueCoding": coding("result-recognition", "HR", "检查检验结果互认")},
    {"url": "scope", "valueCoding": coding("recognition-scope", "alliance", "医联体内互认")},
    {"url": "assessment-year", "valuePositiveInt": 2026}])
AREAS = {"500112": "重庆市渝北区", "420921": "湖北省孝感市孝昌县"}
HR_TAG = {"system": "http://alliance-fhir.org/fhir/CodeSystem/result-recognition",
          "code": "HR", "display": "检查检验结果互认"}


def org(oid: str, name: str, type_code: str, type_name: str, credit_base: str,
        part_of: str | None = None, level: tuple[str, str] | None = None) -> dict:
    resource = {
        "resourceType": "Organization", "id": oid, "meta": profile("AllianceOrganization"),
        "active": True,
        "type": [{"coding": [{"system": ORG_TYPE, "code": type_code, "display": type_name}]}],
        "name": name,
    }
    if credit_base:
        resource["identifier"] = [{"system": f"{SID}/uscc",
                                   "value": credit_base + uscc_check(credit_base)}]
    if part_of:
        resource["partOf"] = {"reference": f"Organization/{part_of}"}
    if level:
        levels = {"1": "一级", "2": "二级", "3": "三级"}
        grades = {"A": "甲等", "B": "乙等"}
        resource["extension"] = [
            ext("hospital-level", valueCoding=coding("hospital-level", level[0],
                                                     levels[level[0]])),
            ext("hospital-grade", valueCoding=coding("hospital-grade", level[1],
                                                     grades[level[1]]))]
    return resource


def membership(mid: str, member: str, kind: str) -> dict:
    close = "紧密型" in kind
    return {
        "resourceType": "OrganizationAffiliation", "id": mid,
        "meta": profile("AllianceMembership"), "active": True,
        "extension": [
            ext("alliance-role", valueCoding=coding("alliance-role", "member", "成员单位")),
            ext("alliance-closeness", valueCoding=coding(
                "alliance-closeness", "close" if close else "loose",
                "紧密型" if close else "松散型"))],
        "period": {"start": "2024-01-01", "end": "2028-12-31"},
        "organization": {"reference": "Organization/lead"},
        "participatingOrganization": {"reference": f"Organization/{member}"},
        "code": [{"text": kind}],
    }


def practitioner(pid: str, family: str, given: str, title: str) -> dict:
    return {
        "resourceType": "Practitioner", "id": pid, "meta": profile("AlliancePractitioner"),
        "active": True,
        "name": [{"text": family + given, "family": family, "given": [given]}],
        "qualification": [{"code": {"text": title}}],
    }


def role(rid: str, who: str, where: str, kind: str) -> dict:
    return {
        "resourceType": "PractitionerRole", "id": rid,
        "meta": profile("AlliancePractitionerRole"), "active": True,
        "extension": [ext("practice-kind", valueCode=kind)],
        "practitioner": {"reference": f"Practitioner/{who}"},
        "organization": {"reference": f"Organization/{where}"},
        "code": [{"text": kind}],
    }


def patient(pid: str, family: str, given: str, gender: str, area: str, birth: str,
            sequence: str, home: str) -> dict:
    first17 = area + birth.replace("-", "") + sequence
    return {
        "resourceType": "Patient", "id": pid, "meta": profile("AlliancePatient"),
        "active": True,
        "extension": [ext("ethnicity", valueCoding=coding("ethnicity", "01", "汉族"))],
        "address": [{"text": AREAS[area], "extension": [ext("division-code", valueCode=area)]}],
        "identifier": [{"system": ID_CARD, "value": first17 + id_card_check(first17)}],
        "name": [{"text": family + given, "family": family, "given": [given]}],
        "gender": gender, "birthDate": birth,
        "managingOrganization": {"reference": f"Organization/{home}"},
    }


def condition(cid: str, who: str, system: str, code: str, display: str) -> dict:
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{who}"},
    }


def referral(sid: str, who: str, direction: str, requester: str, target: str, reason: str,
             urgent: bool, date: str, status: str = "active") -> dict:
    return {
        "resourceType": "ServiceRequest", "id": sid, "meta": profile("AllianceReferral"),
        "status": status, "intent": "order",
        "extension": [ext("referral-direction", valueCoding=coding(
            "referral-direction", direction, "上转" if direction == "up" else "下转"))],
        "identifier": [{"system": f"{SID}/referral", "value": sid.upper()}],
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005",
                                  "display": "Patient referral"}]}],
        "priority": "stat" if urgent else "routine",
        "code": {"text": "上转" if direction == "up" else "下转"},
        "subject": {"reference": f"Patient/{who}"},
        "authoredOn": date,
        "requester": {"reference": f"PractitionerRole/{requester}"},
        "performer": [{"reference": f"Organization/{target}"}],
        "reasonReference": [{"reference": f"Condition/{reason}"}],
    }


def task(tid: str, referral_id: str, who: str, requester: str, owner: str, status: str,
         date: str) -> dict:
    return {
        "resourceType": "Task", "id": tid, "meta": profile("AllianceReferralTask"),
        "status": status, "intent": "order",
        "focus": {"reference": f"ServiceRequest/{referral_id}"},
        "for": {"reference": f"Patient/{who}"},
        "basedOn": [{"reference": f"ServiceRequest/{referral_id}"}],
        "requester": {"reference": f"PractitionerRole/{requester}"},
        "owner": {"reference": f"Organization/{owner}"},
        "authoredOn": date,
    }


def lab(oid: str, who: str, performer: str, loinc: str, name: str, value: float,
        unit: str, issued: str) -> dict:
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "meta": {**profile("AllianceLabResult"), "tag": [HR_TAG]}, "extension": [RECOGNITION],
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": name}], "text": name},
        "subject": {"reference": f"Patient/{who}"},
        "effectiveDateTime": issued + ":00+08:00", "issued": issued + ":00+08:00",
        "performer": [{"reference": f"Organization/{performer}"}],
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def report(rid: str, who: str, performer: str, results: list[str], issued: str) -> dict:
    return {
        "resourceType": "DiagnosticReport", "id": rid, "status": "final",
        "meta": {**profile("AllianceLabReport"), "tag": [HR_TAG]}, "extension": [RECOGNITION],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "LAB"}]}],
        "code": {"text": "生化检验"},
        "subject": {"reference": f"Patient/{who}"},
        "issued": issued + ":00+08:00",
        "performer": [{"reference": f"Organization/{performer}"}],
        "result": [{"reference": f"Observation/{r}"} for r in results],
    }


def imaging_study(sid: str, who: str, uid: str, started: str, referral: str, modality: str,
                  description: str, instances: int) -> dict:
    return {
        "resourceType": "ImagingStudy", "id": sid, "meta": profile("AllianceImagingStudy"),
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:1.2.156.112605.14.{uid}"}],
        "subject": {"reference": f"Patient/{who}"}, "started": started,
        "basedOn": [{"reference": f"ServiceRequest/{referral}"}],
        "endpoint": [{"reference": "Endpoint/lead-pacs"}],
        "numberOfSeries": 1, "numberOfInstances": instances,
        "series": [{"uid": f"1.2.156.112605.14.{uid}.1", "number": 1,
                    "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                 "code": modality},
                    "description": description, "numberOfInstances": instances}],
    }


def imaging_report(rid: str, study: str, who: str, performer: str, issued: str,
                   conclusion: str, recognised: bool) -> dict:
    resource = {
        "resourceType": "DiagnosticReport", "id": rid, "meta": profile("AllianceImagingReport"),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD"}]}],
        "code": {"text": "CT 影像报告"}, "subject": {"reference": f"Patient/{who}"},
        "issued": issued + ":00+08:00", "performer": [{"reference": f"Organization/{performer}"}],
        "imagingStudy": [{"reference": f"ImagingStudy/{study}"}], "conclusion": conclusion,
    }
    if recognised:  # the imaging centre's review: the images are recognised, not the text
        resource["extension"] = [RECOGNITION]
    return resource


def resources() -> list[dict]:
    return [
        org("lead", "渝北区人民医院", "A100", "综合医院", "12500112450000123",
            level=("3", "A")),
        org("lead-cardiology", "渝北区人民医院心血管内科", "A100", "综合医院", "", "lead"),
        org("lead-imaging", "渝北区人民医院医学影像中心", "A100", "综合医院", "", "lead"),
        org("county", "孝昌县第一人民医院", "A100", "综合医院", "12420921420000456",
            level=("2", "A")),
        org("tcm", "渝北区中医院", "A210", "中医医院", "12500112450000789", level=("2", "A")),
        org("shuangfeng", "双凤桥街道社区卫生服务中心", "B100", "社区卫生服务中心",
            "12500112MB0000111"),
        org("gulu", "古路镇中心卫生院", "C210", "中心卫生院", "12500112MB0000222"),
        membership("m-county", "county", "成员单位 紧密型"),
        membership("m-tcm", "tcm", "成员单位 紧密型"),
        membership("m-shuangfeng", "shuangfeng", "成员单位 紧密型"),
        membership("m-gulu", "gulu", "成员单位 松散型"),
        practitioner("li-jianguo", "李", "建国", "主任医师"),
        practitioner("wang-fang", "王", "芳", "副主任医师"),
        practitioner("chen-jing", "陈", "静", "主治医师"),
        practitioner("zhao-ming", "赵", "明", "主任中医师"),
        role("li-jianguo-lead", "li-jianguo", "lead-cardiology", "primary"),
        role("li-jianguo-gulu", "li-jianguo", "gulu", "visiting"),
        role("wang-fang-county", "wang-fang", "county", "primary"),
        role("chen-jing-shuangfeng", "chen-jing", "shuangfeng", "primary"),
        role("zhao-ming-tcm", "zhao-ming", "tcm", "primary"),
        role("zhao-ming-gulu", "zhao-ming", "gulu", "multi-site"),
        patient("zhang-san", "张", "三", "male", "500112", "1958-03-14", "031", "shuangfeng"),
        patient("liu-mei", "刘", "梅", "female", "500112", "1966-11-02", "042", "gulu"),
        patient("huang-wei", "黄", "伟", "male", "420921", "1972-07-21", "015", "county"),
        patient("he-lan", "何", "兰", "female", "500112", "1949-01-30", "008", "lead"),
        condition("zhang-san-htn", "zhang-san", ICD10_CN, "I10.x00x002", "高血压3级"),
        condition("liu-mei-dm", "liu-mei", ICD10_CN, "E11.900", "2型糖尿病"),
        condition("huang-wei-ami", "huang-wei", ICD10_CN, "I21.900", "急性心肌梗死"),
        condition("he-lan-bi", "he-lan", TCM, "A07.06.03", "尪痹"),
        referral("ref-up-1", "zhang-san", "up", "chen-jing-shuangfeng", "lead-cardiology",
                 "zhang-san-htn", False, "2026-11-02", "completed"),
        referral("ref-up-2", "huang-wei", "up", "wang-fang-county", "lead-cardiology",
                 "huang-wei-ami", True, "2026-11-10"),
        referral("ref-down-1", "he-lan", "down", "li-jianguo-lead", "gulu", "he-lan-bi",
                 False, "2026-11-18"),
        task("task-up-1", "ref-up-1", "zhang-san", "chen-jing-shuangfeng", "lead",
             "completed", "2026-11-02"),
        task("task-up-2", "ref-up-2", "huang-wei", "wang-fang-county", "lead", "accepted",
             "2026-11-10"),
        task("task-down-1", "ref-down-1", "he-lan", "li-jianguo-lead", "gulu", "requested",
             "2026-11-18"),
        lab("liu-mei-glu", "liu-mei", "gulu", "2345-7", "葡萄糖", 7.8, "mmol/L",
            "2026-11-12T08:30"),
        lab("liu-mei-k", "liu-mei", "gulu", "2823-3", "钾", 4.1, "mmol/L", "2026-11-12T08:30"),
        report("liu-mei-chem", "liu-mei", "gulu", ["liu-mei-glu", "liu-mei-k"],
               "2026-11-12T10:00"),
        {
            "resourceType": "Endpoint", "id": "lead-pacs", "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/"
                               "endpoint-connection-type", "code": "dicom-wado-rs"},
            "managingOrganization": {"reference": "Organization/lead-imaging"},
            "payloadType": [{"text": "DICOM"}],
            "address": "https://pacs.lead.example/dicom-web",
        },
        imaging_study("zhang-san-ct", "zhang-san", "20261103.1", "2026-11-03T09:12:00+08:00",
                      "ref-up-1", "CT", "胸部平扫", 120),
        imaging_study("huang-wei-ct", "huang-wei", "20261110.2", "2026-11-10T14:05:00+08:00",
                      "ref-up-2", "CT", "头颅平扫", 96),
        imaging_report("zhang-san-ct-report", "zhang-san-ct", "zhang-san", "shuangfeng",
                       "2026-11-03T11:00", "双肺纹理增多，未见明确占位。", False),
        imaging_report("zhang-san-ct-review", "zhang-san-ct", "zhang-san", "lead-imaging",
                       "2026-11-04T09:30", "复核：同意原诊断，双肺未见明确占位。", True),
        imaging_report("huang-wei-ct-review", "huang-wei-ct", "huang-wei", "lead-imaging",
                       "2026-11-10T15:20", "复核：未见颅内出血。", True),
        lab("zhang-san-tc", "zhang-san", "shuangfeng", "2093-3", "总胆固醇", 6.2, "mmol/L",
            "2026-11-02T08:10"),
        lab("zhang-san-alb", "zhang-san", "shuangfeng", "1751-7", "白蛋白", 42, "g/L",
            "2026-11-02T08:10"),
        report("zhang-san-chem", "zhang-san", "shuangfeng", ["zhang-san-tc", "zhang-san-alb"],
               "2026-11-02T10:30"),
        {
            "resourceType": "Provenance", "id": "zhang-san-ct-review-provenance",
            "target": [{"reference": "DiagnosticReport/zhang-san-ct-review"}],
            "recorded": "2026-11-04T09:30:00+08:00",
            "activity": {"text": "影像中心复核 / imaging centre review"},
            "agent": [{"who": {"reference": "PractitionerRole/li-jianguo-lead"},
                       "onBehalfOf": {"reference": "Organization/lead-imaging"}}],
            "entity": [{"role": "source",
                        "what": {"reference": "DiagnosticReport/zhang-san-ct-report"}}],
        },
    ]


# where the demo's resources say they live (relative references resolve against it)
DEMO_BASE = "http://demo.alliance-fhir.org/fhir"


def main() -> None:
    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": f"{DEMO_BASE}/{r['resourceType']}/{r['id']}",
                   "resource": {"resourceType": r["resourceType"], "id": r["id"],
                                "language": "zh-CN", **r},
                   "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                  for r in resources()],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {OUT} ({len(bundle['entry'])} resources)")


if __name__ == "__main__":
    main()
