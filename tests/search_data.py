"""A small, fixed data set for the search conformance table (ids are what tests expect)."""

from __future__ import annotations

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ID_CARD = "urn:oid:2.16.156.10011.1.3"
HR = {"system": "http://alliance-fhir.org/fhir/CodeSystem/result-recognition", "code": "HR"}


def quantity(value: float, code: str) -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def observation(oid: str, subject: str, code: str, display: str, when: object,
                **value: object) -> dict:
    resource = {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": {"reference": f"Patient/{subject}"}, **value}
    if isinstance(when, dict):
        resource["effectivePeriod"] = when
    else:
        resource["effectiveDateTime"] = when
    return resource


RESOURCES = [
    {"resourceType": "Organization", "id": "org1", "name": "本溪市中心医院",
     "alias": ["本溪中心医院"], "address": [{"city": "本溪"}]},
    {"resourceType": "Organization", "id": "org2", "name": "County Hospital",
     "partOf": {"reference": "Organization/org1"}},
    {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1958-03-14",
     "name": [{"family": "张", "given": ["三"]}],
     "identifier": [{"system": ID_CARD, "value": "11010519580314002X"}],
     "telecom": [{"system": "phone", "value": "13800138000"}],
     "managingOrganization": {"reference": "Organization/org1"}, "meta": {"tag": [HR]}},
    {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1966-11-02",
     "name": [{"text": "李四", "family": "李", "given": ["四"]}],
     "identifier": [{"system": "http://hospital.example/mrn", "value": "MRN-7",
                     "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                    "v2-0203", "code": "MR"}]}}],
     "managingOrganization": {"reference": "Organization/org2"}},
    {"resourceType": "Patient", "id": "p3", "gender": "female", "birthDate": "2000",
     "name": [{"family": "Müller", "given": ["Élodie"]}]},
    {"resourceType": "Patient", "id": "p4", "gender": "other", "birthDate": "2010-06-01",
     "name": [{"text": "ＡＢＣ Ｗｉｄｅ"}], "deceasedBoolean": True},
    {"resourceType": "Patient", "id": "p5"},
    {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "王", "given": ["芳"]}]},
    observation("o1", "p1", "2345-7", "Glucose", "2026-11-12T08:30:00+08:00",
                valueQuantity=quantity(7.8, "mmol/L"), meta={"tag": [HR]}),
    observation("o2", "p2", "2345-7", "Glucose", "2026-11-10",
                valueQuantity=quantity(5.4, "mmol/l")),
    observation("o3", "p1", "2823-3", "Potassium", "2025-01-01T10:00:00Z",
                valueQuantity=quantity(4.1, "mmol/L")),
    observation("o4", "p3", "2345-7", "Glucose", "2026-11-11",
                valueQuantity=quantity(5400, "umol/L")),
    observation("o5", "p2", "85354-9", "Blood pressure", {"start": "2026-06-01",
                                                         "end": "2026-06-30"},
                component=[{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                            "valueQuantity": quantity(150, "mm[Hg]")},
                           {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                            "valueQuantity": quantity(95, "mm[Hg]")}]),
    observation("o6", "p4", "8302-2", "Body height", "2026-01-01", valueString="tall"),
    {"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
     "code": {"text": "生化"}, "subject": {"reference": "Patient/p1"},
     "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o3"}]},
    {"resourceType": "DiagnosticReport", "id": "dr2", "status": "preliminary",
     "code": {"text": "血糖"}, "subject": {"reference": "Patient/p2"},
     "result": [{"reference": "Observation/o2"}]},
    {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
     "priority": "stat", "subject": {"reference": "Patient/p1"},
     "requester": {"reference": "Practitioner/pr1"},
     "performer": [{"reference": "Organization/org1"}], "authoredOn": "2026-11-02"},
    {"resourceType": "ServiceRequest", "id": "sr2", "status": "completed", "intent": "order",
     "priority": "routine", "subject": {"reference": "Patient/p2"},
     "performer": [{"identifier": {"system": "http://alliance-fhir.org/fhir/sid/uscc",
                                   "value": "12330000470051726F"}}],
     "authoredOn": "2026-10-01"},
    {"resourceType": "ValueSet", "id": "vs1", "url": "http://alliance-fhir.org/fhir/ValueSet/"
     "glucose", "status": "active"},
    {"resourceType": "ImagingStudy", "id": "is1", "status": "available",
     "subject": {"reference": "Patient/p1"}, "numberOfInstances": 120,
     "series": [{"uid": "1.2.3", "modality": {"system": "http://dicom.nema.org/resources/"
                                                       "ontology/DCM", "code": "CT"}}]},
]
