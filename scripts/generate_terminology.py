"""Generate ``terminology/``: the alliance's CodeSystems, ValueSets and ConceptMaps.

Chinese ``display`` (as the national standards write it) and an English designation for
every concept. Hierarchical systems (departments 诊疗科目, GB/T 2260 areas) nest their
concepts. Each CodeSystem has a ValueSet of all its codes. Run:
``python scripts/generate_terminology.py``. Sources: WS 218-2002, WS 364 (CV08.30.005),
GB 3304, GB/T 2260, GB/T 2261.1, the 诊疗科目名录, 国卫医发〔2022〕6号 (re-test reasons).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parent.parent / "terminology"
BASE = "http://alliance-fhir.org/fhir"
VERSION = "0.1.0"

ETHNIC_GROUPS = (  # GB 3304, in code order 01-56: (中文, English)
    ("汉族", "Han"), ("蒙古族", "Mongol"), ("回族", "Hui"), ("藏族", "Tibetan"),
    ("维吾尔族", "Uyghur"), ("苗族", "Miao"), ("彝族", "Yi"), ("壮族", "Zhuang"),
    ("布依族", "Bouyei"), ("朝鲜族", "Korean"), ("满族", "Manchu"), ("侗族", "Dong"),
    ("瑶族", "Yao"), ("白族", "Bai"), ("土家族", "Tujia"), ("哈尼族", "Hani"),
    ("哈萨克族", "Kazakh"), ("傣族", "Dai"), ("黎族", "Li"), ("傈僳族", "Lisu"),
    ("佤族", "Va"), ("畲族", "She"), ("高山族", "Gaoshan"), ("拉祜族", "Lahu"),
    ("水族", "Shui"), ("东乡族", "Dongxiang"), ("纳西族", "Nakhi"), ("景颇族", "Jingpo"),
    ("柯尔克孜族", "Kyrgyz"), ("土族", "Tu"), ("达斡尔族", "Daur"), ("仫佬族", "Mulao"),
    ("羌族", "Qiang"), ("布朗族", "Blang"), ("撒拉族", "Salar"), ("毛南族", "Maonan"),
    ("仡佬族", "Gelao"), ("锡伯族", "Xibe"), ("阿昌族", "Achang"), ("普米族", "Pumi"),
    ("塔吉克族", "Tajik"), ("怒族", "Nu"), ("乌孜别克族", "Uzbek"), ("俄罗斯族", "Russian"),
    ("鄂温克族", "Evenki"), ("德昂族", "De'ang"), ("保安族", "Bonan"), ("裕固族", "Yugur"),
    ("京族", "Gin"), ("塔塔尔族", "Tatar"), ("独龙族", "Derung"), ("鄂伦春族", "Oroqen"),
    ("赫哲族", "Hezhen"), ("门巴族", "Monba"), ("珞巴族", "Lhoba"), ("基诺族", "Jino"),
)

Concept = tuple[str, str, str] | tuple[str, str, str, list]  # code, 中文, English[, children]

LIS_TO_LOINC = (  # a member hospital's local LIS codes -> LOINC (serum or plasma unless noted)
    ("GLU", "葡萄糖", "Glucose", "2345-7"),
    ("K", "钾", "Potassium", "2823-3"),
    ("NA", "钠", "Sodium", "2951-2"),
    ("CL", "氯", "Chloride", "2075-0"),
    ("CA", "钙", "Calcium", "17861-6"),
    ("TC", "总胆固醇", "Total cholesterol", "2093-3"),
    ("TG", "甘油三酯", "Triglyceride", "2571-8"),
    ("ALB", "白蛋白", "Albumin", "1751-7"),
    ("ALT", "丙氨酸氨基转移酶", "Alanine aminotransferase", "1742-6"),
    ("CREA", "肌酐", "Creatinine", "2160-0"),
    ("HBA1C", "糖化血红蛋白 (全血)", "Haemoglobin A1c (blood)", "4548-4"),
)
SYSTEMS: dict[str, tuple[str, str, list[Concept]]] = {
    "institution-type": ("医疗卫生机构类别 (WS 218-2002)", "Institution type", [
        ("A100", "综合医院", "General hospital"),
        ("A210", "中医医院", "Traditional Chinese medicine hospital"),
        ("A300", "中西医结合医院", "Integrated Chinese and Western medicine hospital"),
        ("B100", "社区卫生服务中心", "Community health service centre"),
        ("B200", "社区卫生服务站", "Community health service station"),
        ("C210", "中心卫生院", "Central township health centre"),
        ("C220", "乡卫生院", "Township health centre"),
        ("D600", "村卫生室", "Village clinic"),
        ("J100", "疾病预防控制中心", "Centre for disease control and prevention"),
        ("P110", "临床检验中心", "Clinical laboratory centre"),
    ]),
    "hospital-level": ("医院级别", "Hospital level", [
        ("1", "一级", "Level 1"), ("2", "二级", "Level 2"), ("3", "三级", "Level 3"),
    ]),
    "hospital-grade": ("医院等次", "Hospital grade", [
        ("S", "特等", "Special grade"), ("A", "甲等", "Grade A"), ("B", "乙等", "Grade B"),
        ("C", "丙等", "Grade C"), ("U", "未定级", "Not graded"),
    ]),
    "alliance-role": ("医联体成员角色", "Alliance role", [
        ("lead", "牵头单位", "Lead institution"), ("member", "成员单位", "Member institution"),
    ]),
    "access-tier": ("访问层级", "Access tier", [
        ("own-patients", "本人患者", "Own patients"),
        ("organization", "本机构患者", "Patients of the organisation"),
        ("alliance", "全医联体", "The whole alliance"),
    ]),
    "admin-role": ("管理员角色（三员分立）", "Administrator role", [
        ("system-admin", "系统管理员", "System administrator"),
        ("security-admin", "安全管理员", "Security administrator"),
        ("audit-admin", "安全审计员", "Audit administrator"),
    ]),
    "alliance-closeness": ("医联体紧密程度", "Alliance closeness", [
        ("close", "紧密型", "Close alliance"), ("loose", "松散型", "Loose alliance"),
    ]),
    "referral-direction": ("转诊方向", "Referral direction", [
        ("up", "上转", "Upward referral"), ("down", "下转", "Downward referral"),
    ]),
    "referral-rejection-reason": ("拒绝转诊原因", "Referral rejection reason", [
        ("no-bed", "无床位", "No bed available"),
        ("beyond-capability", "超出诊疗能力", "Beyond the member's capability"),
        ("not-indicated", "无转诊指征", "Referral not indicated"),
        ("patient-declined", "患者拒绝", "The patient declined"),
        ("other", "其他", "Other"),
    ]),
    "referral-business-status": ("转诊业务状态", "Referral business status", [
        ("overdue", "超时未接受", "Not accepted within its deadline"),
    ]),
    "referral-kpi": ("双向转诊考核指标", "Referral KPI", [
        ("up-sent", "上转人次（转出）", "Upward referrals sent"),
        ("up-received", "上转人次（接收）", "Upward referrals received"),
        ("down-sent", "下转人次（转出）", "Downward referrals sent"),
        ("down-received", "下转人次（接收）", "Downward referrals received"),
        ("down-up-ratio", "下转上转比", "Downward to upward referral ratio"),
        ("green-channel", "绿色通道转诊人次", "Green-channel referrals"),
        ("accept-median-minutes", "接受时间中位数（分钟）", "Median minutes to acceptance"),
        ("rejection-rate", "拒收率", "Rejection rate"),
        ("grade", "考核等级", "Grade"),
    ]),
    "referral-grade": ("转诊考核等级", "Referral grade", [
        ("excellent", "优", "Excellent"), ("good", "良", "Good"), ("fair", "中", "Fair"),
        ("poor", "差", "Poor"),
    ]),
    "result-recognition": ("检查检验结果互认标识", "Mutual recognition of results", [
        ("HR", "检查检验结果互认", "Recognised across members (HR mark)"),
    ]),
    "recognition-scope": ("互认范围", "Recognition scope", [
        ("alliance", "医联体内互认", "Within the alliance"),
        ("city", "市级互认", "City-wide"), ("province", "省级互认", "Province-wide"),
    ]),
    "retest-reason": ("复查理由", "Reason for re-testing", [
        ("condition-changed", "病情变化", "The condition changed"),
        ("fast-changing", "检查检验结果变化快", "The result changes fast"),
        ("major-intervention", "重大医疗行为前", "Before a major intervention"),
        ("emergency", "急诊急救", "Emergency"),
        ("forensic", "司法鉴定或伤残鉴定", "Forensic or disability assessment"),
        ("other", "其他", "Other"),
    ]),
    "professional-title": ("专业技术职务类别 (WS 364 CV08.30.005)", "Professional title", [
        ("1", "正高", "Senior (chief physician)"),
        ("2", "副高", "Associate senior (associate chief physician)"),
        ("3", "中级", "Intermediate (attending physician)"),
        ("4", "师级", "Junior (physician, resident)"), ("5", "士级", "Assistant"),
    ]),
    "department": ("诊疗科目", "Clinical department", [
        ("01", "预防保健科", "Preventive care"),
        ("02", "全科医疗科", "General practice"),
        ("03", "内科", "Internal medicine", [
            ("03.01", "呼吸内科专业", "Respiratory medicine"),
            ("03.02", "消化内科专业", "Gastroenterology"),
            ("03.03", "神经内科专业", "Neurology"),
            ("03.04", "心血管内科专业", "Cardiology"),
            ("03.05", "血液内科专业", "Haematology"),
            ("03.06", "肾病学专业", "Nephrology"),
            ("03.07", "内分泌专业", "Endocrinology"),
        ]),
        ("04", "外科", "Surgery", [
            ("04.01", "普通外科专业", "General surgery"),
            ("04.02", "神经外科专业", "Neurosurgery"),
            ("04.03", "骨科专业", "Orthopaedics"),
            ("04.04", "泌尿外科专业", "Urology"),
            ("04.05", "胸外科专业", "Thoracic surgery"),
        ]),
        ("05", "妇产科", "Obstetrics and gynaecology"),
        ("07", "儿科", "Paediatrics"),
        ("10", "眼科", "Ophthalmology"),
        ("11", "耳鼻咽喉科", "Otorhinolaryngology"),
        ("12", "口腔科", "Stomatology"),
        ("20", "急诊医学科", "Emergency medicine"),
        ("30", "医学检验科", "Laboratory medicine"),
        ("32", "医学影像科", "Medical imaging"),
        ("50", "中医科", "Traditional Chinese medicine"),
    ]),
    "ethnicity": ("民族 (GB 3304)", "Ethnicity", [
        (f"{n:02d}", zh, en) for n, (zh, en) in enumerate(ETHNIC_GROUPS, start=1)
    ]),
    "administrative-division": ("行政区划代码 (GB/T 2260, subset)", "Administrative division", [
        ("110000", "北京市", "Beijing", [
            ("110101", "东城区", "Dongcheng District"),
            ("110102", "西城区", "Xicheng District"),
            ("110105", "朝阳区", "Chaoyang District"),
        ]),
        ("420000", "湖北省", "Hubei Province", [
            ("420900", "孝感市", "Xiaogan", [("420921", "孝昌县", "Xiaochang County")]),
        ]),
        ("500000", "重庆市", "Chongqing", [("500112", "渝北区", "Yubei District")]),
    ]),
    "icd10-cn": ("疾病分类与代码 国家临床版 2.0 (ICD-10, subset)", "ICD-10 national clinical "
                 "edition", [
        ("E11", "2型糖尿病", "Type 2 diabetes mellitus", [
            ("E11.900", "2型糖尿病", "Type 2 diabetes mellitus without complications")]),
        ("E14", "未特指的糖尿病", "Unspecified diabetes mellitus", [
            ("E14.900x001", "糖尿病", "Diabetes mellitus")]),
        ("I10", "特发性(原发性)高血压", "Essential (primary) hypertension", [
            ("I10.x00x002", "高血压3级", "Hypertension grade 3")]),
        ("I21", "急性心肌梗死", "Acute myocardial infarction", [
            ("I21.900", "急性心肌梗死", "Acute myocardial infarction, unspecified")]),
        ("I25", "慢性缺血性心脏病", "Chronic ischaemic heart disease", [
            ("I25.103", "冠状动脉粥样硬化性心脏病", "Atherosclerotic heart disease")]),
        ("I63", "脑梗死", "Cerebral infarction", [
            ("I63.900", "脑梗死", "Cerebral infarction, unspecified")]),
        ("J18", "肺炎，病原体未特指", "Pneumonia, organism unspecified", [
            ("J18.900", "肺炎", "Pneumonia, unspecified")]),
        ("J44", "其他慢性阻塞性肺病", "Other chronic obstructive pulmonary disease", [
            ("J44.900", "慢性阻塞性肺病", "Chronic obstructive pulmonary disease, unspecified")]),
    ]),
    "gbt15657-2021": ("中医病证分类与代码 (GB/T 15657-2021, subset)", "TCM diseases and "
                      "patterns", [
        ("A01", "外感病类术语", "Exogenous diseases", [("A01.01.01.01", "伤风", "Common cold")]),
        ("A04", "脏腑病及相关病类术语", "Zang-fu organ diseases"),
        ("A05", "情志病类术语", "Emotional diseases"),
        ("A06", "气血津液病类术语", "Qi, blood and body fluid diseases"),
        ("A07", "头身形体病类术语", "Head, body and form diseases", [
            ("A07.06.03", "尪痹", "Wang bi (deforming arthralgia)")]),
        ("A17", "临时诊断用术语", "Provisional diagnostic terms"),
    ]),
    "lis-county": ("渝北区人民医院 LIS 检验项目 (样例)", "County hospital LIS tests", [
        (code, zh, en) for code, zh, en, _ in LIS_TO_LOINC
    ]),
    "sex": ("人的性别代码 (GB/T 2261.1)", "Sex", [
        ("0", "未知的性别", "Unknown"), ("1", "男性", "Male"), ("2", "女性", "Female"),
        ("9", "未说明的性别", "Not stated"),
    ]),
}
FRAGMENTS = ("administrative-division", "department", "icd10-cn", "gbt15657-2021")
SEX_TO_GENDER = {"0": "unknown", "1": "male", "2": "female", "9": "unknown"}


def _concepts(items: list[Concept]) -> list[dict]:
    out = []
    for item in items:
        concept = {"code": item[0], "display": item[1],
                   "designation": [{"language": "en", "value": item[2]}]}
        if len(item) > 3:
            concept["concept"] = _concepts(item[3])  # type: ignore[misc]
        out.append(concept)
    return out


def _write(resource: dict) -> None:
    path = OUT / f"{resource['resourceType']}-{resource['id']}.json"
    path.write_bytes(orjson.dumps(resource, option=orjson.OPT_INDENT_2) + b"\n")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    common = {"version": VERSION, "status": "active", "experimental": False,
              "publisher": "alliance-fhir-server", "language": "zh-CN"}
    for code, (title, english, items) in SYSTEMS.items():
        url = f"{BASE}/CodeSystem/{code}"
        hierarchical = any(len(item) > 3 for item in items)
        name = re.sub(r"[^A-Za-z0-9]", "", english.title())
        _write({"resourceType": "CodeSystem", "id": code, "url": url, **common,
                "name": name, "title": f"{title} / {english}",
                "caseSensitive": True, "content": "fragment" if code in FRAGMENTS else "complete",
                **({"hierarchyMeaning": "is-a"} if hierarchical else {}),
                "concept": _concepts(items)})
        _write({"resourceType": "ValueSet", "id": code, "url": f"{BASE}/ValueSet/{code}",
                **common, "name": name,
                "title": f"{title} / {english}", "compose": {"include": [{"system": url}]}})
    _write({"resourceType": "ConceptMap", "id": "sex-to-gender",
            "url": f"{BASE}/ConceptMap/sex-to-gender", **common, "name": "SexToGender",
            "title": "GB/T 2261.1 性别 → FHIR AdministrativeGender",
            "sourceUri": f"{BASE}/ValueSet/sex",
            "targetUri": "http://hl7.org/fhir/ValueSet/administrative-gender",
            "group": [{"source": f"{BASE}/CodeSystem/sex",
                       "target": "http://hl7.org/fhir/administrative-gender",
                       "element": [{"code": sex, "target": [{"code": gender,
                                                             "equivalence": "equivalent"}]}
                                   for sex, gender in SEX_TO_GENDER.items()]}]})
    _write({"resourceType": "ConceptMap", "id": "lis-county-to-loinc",
            "url": f"{BASE}/ConceptMap/lis-county-to-loinc", **common,
            "name": "LisCountyToLoinc", "title": "渝北区人民医院 LIS 项目 → LOINC",
            "sourceUri": f"{BASE}/ValueSet/lis-county",
            "targetUri": "http://loinc.org/vs",
            "group": [{"source": f"{BASE}/CodeSystem/lis-county", "target": "http://loinc.org",
                       "element": [{"code": code, "display": zh,
                                    "target": [{"code": loinc, "equivalence": "equivalent"}]}
                                   for code, zh, _, loinc in LIS_TO_LOINC]}]})
    print(f"wrote {len(list(OUT.glob('*.json')))} files to {OUT}")


if __name__ == "__main__":
    main()
