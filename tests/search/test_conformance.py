"""The search conformance table: parameter types × modifiers × prefixes → exact ids."""

from __future__ import annotations

import pytest
from search_data import RESOURCES
from support import PACKAGE, Client

from fhir_server.app import build_app
from fhir_server.config import Settings


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("search") / "search.db"
    with Client(build_app(Settings(storage=f"sqlite:///{db}"))) as client:
        for resource in RESOURCES:
            url = f"/{resource['resourceType']}/{resource['id']}"
            response = client.put(url, json=resource)
            assert response.status_code == 201, response.text
        yield client


CASES = [
    # string: starts-with, folding, Chinese, pinyin, modifiers
    ("Patient?name=张", ["p1"]),
    ("Patient?name=张三", ["p1"]),
    ("Patient?name=李四", ["p2"]),
    ("Patient?name=elodie", ["p3"]),
    ("Patient?name=MULLER", ["p3"]),
    ("Patient?name=abc", ["p4"]),
    ("Patient?name:exact=张三", ["p1"]),
    ("Patient?name:exact=张", ["p1"]),
    ("Patient?name:exact=Müller", ["p3"]),
    ("Patient?name:exact=muller", []),
    ("Patient?name:contains=ller", ["p3"]),
    ("Patient?family=李", ["p2"]),
    ("Patient?given=三,四", ["p1", "p2"]),
    ("Organization?name=本溪市中心醫院", ["org1"]),
    ("Organization?name=本溪", ["org1"]),
    ("Patient?name-pinyin=zs", ["p1"]),
    ("Patient?name-pinyin=zhangsan", ["p1"]),
    ("Patient?name-pinyin=zhang", ["p1"]),
    ("Patient?name-pinyin=ZS", ["p1"]),
    ("Patient?name-pinyin=张三", ["p1"]),
    ("Patient?name-pinyin=ls", ["p2"]),
    ("Practitioner?name-pinyin=wf", ["pr1"]),
    ("Organization?name-pinyin=bxszxyy", ["org1"]),
    ("Organization?name-pinyin=bxzxyy", ["org1"]),
    # token
    ("Patient?gender=male", ["p1"]),
    ("Patient?gender=male,female", ["p1", "p2", "p3"]),
    ("Patient?gender:not=male", ["p2", "p3", "p4", "p5"]),
    ("Patient?identifier=urn:oid:2.16.156.10011.1.3|11010519580314002X", ["p1"]),
    ("Patient?identifier=11010519580314002X", ["p1"]),
    ("Patient?identifier=urn:oid:2.16.156.10011.1.3|", ["p1"]),
    ("Patient?identifier=|11010519580314002X", []),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-7",
     ["p2"]),
    ("Patient?telecom=13800138000", ["p1"]),
    ("Patient?phone=13800138000", ["p1"]),
    ("Patient?deceased=true", ["p4"]),
    ("Patient?_tag=http://alliance-fhir.org/fhir/CodeSystem/result-recognition|HR", ["p1"]),
    ("Observation?code=http://loinc.org|2345-7", ["o1", "o2", "o4"]),
    ("Observation?code=2345-7,2823-3", ["o1", "o2", "o3", "o4"]),
    ("Observation?code=http://loinc.org|", ["o1", "o2", "o3", "o4", "o5", "o6"]),
    ("Observation?code:text=glu", ["o1", "o2", "o4"]),
    ("Observation?code:text=blood", ["o5"]),
    ("Observation?code=2345-7&subject=Patient/p1", ["o1"]),
    ("ServiceRequest?priority=stat", ["sr1"]),
    ("ImagingStudy?modality=CT", ["is1"]),
    # missing
    ("Patient?gender:missing=true", ["p5"]),
    ("Patient?gender:missing=false", ["p1", "p2", "p3", "p4"]),
    ("Patient?birthdate:missing=true", ["p5"]),
    # date: precision ranges and every prefix
    ("Patient?birthdate=1958", ["p1"]),
    ("Patient?birthdate=1958-03", ["p1"]),
    ("Patient?birthdate=1958-03-14", ["p1"]),
    ("Patient?birthdate=1958-03-15", []),
    ("Patient?birthdate=ne1958-03-14", ["p2", "p3", "p4"]),
    ("Patient?birthdate=gt1966-11-02", ["p3", "p4"]),
    ("Patient?birthdate=ge1966-11-02", ["p2", "p3", "p4"]),
    ("Patient?birthdate=lt1966-11-02", ["p1"]),
    ("Patient?birthdate=le1966-11-02", ["p1", "p2"]),
    ("Patient?birthdate=sa1966", ["p3", "p4"]),
    ("Patient?birthdate=eb2000", ["p1", "p2"]),
    ("Patient?birthdate=2000-05-01", []),
    ("Patient?birthdate=ge2000-01-01&birthdate=lt2005", ["p3"]),  # 2000 overlaps
    ("Patient?birthdate=ge1960&birthdate=lt2001", ["p2", "p3"]),
    ("Observation?date=2026-11-12", ["o1"]),
    ("Observation?date=2026-11-12T00:30:00Z", ["o1"]),
    ("Observation?date=2026-11", ["o1", "o2", "o4"]),
    ("Observation?date=ge2026-11-11", ["o1", "o4"]),
    ("Observation?date=2026-06", ["o5"]),
    ("Observation?date=2026-06-15", []),
    ("Observation?date=ap2026-06-15", ["o5"]),
    ("Observation?date=lt2026-06-15", ["o3", "o5", "o6"]),
    ("Observation?code=2345-7&date=ge2026-11-11", ["o1", "o4"]),
    ("Observation?code=2345-7&date=lt2026-11-11", ["o2"]),
    ("Observation?code=2345-7&date=2026-11-10", ["o2"]),
    ("ServiceRequest?authored=ge2026-11-01", ["sr1"]),
    ("Patient?_lastUpdated=gt2000-01-01", ["p1", "p2", "p3", "p4", "p5"]),
    ("Patient?_lastUpdated=lt2000-01-01", []),
    # quantity with UCUM canonical units
    ("Observation?value-quantity=5.4|http://unitsofmeasure.org|mmol/L", ["o2", "o4"]),
    ("Observation?value-quantity=5.4|http://unitsofmeasure.org|mmol/l", ["o2", "o4"]),
    ("Observation?value-quantity=5400|http://unitsofmeasure.org|umol/L", ["o2", "o4"]),
    ("Observation?value-quantity=7.8||mmol/L", ["o1"]),
    ("Observation?value-quantity=gt7", ["o1", "o4"]),
    ("Observation?value-quantity=gt5|http://unitsofmeasure.org|mmol/L", ["o1", "o2", "o4"]),
    ("Observation?value-quantity=le4.1|http://unitsofmeasure.org|mmol/L", ["o3"]),
    ("Observation?value-quantity=ap5.5|http://unitsofmeasure.org|mmol/L", ["o2", "o4"]),
    ("Observation?value-quantity=ne5.4|http://unitsofmeasure.org|mmol/L", ["o1", "o3"]),
    # reference
    ("Observation?subject=Patient/p1", ["o1", "o3"]),
    ("Observation?subject=p1", ["o1", "o3"]),
    ("Observation?subject:Patient=p1", ["o1", "o3"]),
    ("Observation?patient=p2", ["o2", "o5"]),
    ("Observation?subject=http://testserver/fhir/Patient/p1", ["o1", "o3"]),
    ("Patient?organization=Organization/org1", ["p1"]),
    ("ServiceRequest?performer:identifier=http://alliance-fhir.org/fhir/sid/uscc|"
     "12330000470051726F", ["sr2"]),
    ("Organization?partof=org1", ["org2"]),
    # uri
    ("ValueSet?url=http://alliance-fhir.org/fhir/ValueSet/glucose", ["vs1"]),
    ("ValueSet?url:below=http://alliance-fhir.org/fhir&_count=100",  # the package's too
     ["vs1", *(r["id"] for r in PACKAGE.of_type("ValueSet"))]),
    ("ValueSet?url:above=http://alliance-fhir.org/fhir/ValueSet/glucose/v2", ["vs1"]),
    ("ValueSet?url=http://alliance-fhir.org/fhir", []),
    # composite
    ("Observation?code-value-quantity=http://loinc.org|2345-7$gt6", ["o1", "o4"]),  # any unit
    ("Observation?code-value-quantity=2345-7$gt6|http://unitsofmeasure.org|mmol/L", ["o1"]),
    ("Observation?code-value-quantity=2345-7$5.4|http://unitsofmeasure.org|mmol/L",
     ["o2", "o4"]),
    ("Observation?component-code-value-quantity=http://loinc.org|8480-6$gt140", ["o5"]),
    ("Observation?component-code-value-quantity=http://loinc.org|8462-4$gt140", []),
    ("Observation?combo-code-value-quantity=8480-6$gt140,2345-7$gt7", ["o1", "o4", "o5"]),
    ("Observation?value-string=tal", ["o6"]),
    ("Observation?code=2345-7&value-quantity=gt6", ["o1", "o4"]),  # checked per match
    ("Observation?code=2345-7&value-quantity=le6&status=final", ["o2"]),
    ("Observation?code=2345-7&value-quantity=gt6|http://unitsofmeasure.org|mmol/L", ["o1"]),
    # chains and reverse chains
    ("Observation?subject:Patient.name=张三", ["o1", "o3"]),
    ("Observation?subject.gender=female", ["o2", "o4", "o5"]),
    ("Observation?subject:Patient.organization.name=本溪", ["o1", "o3"]),
    ("DiagnosticReport?result.subject:Patient.organization.name=本溪", ["dr1"]),
    ("Observation?subject:Patient.organization.partof.name=本溪", ["o2", "o5"]),
    ("Patient?_has:Observation:subject:code=2345-7", ["p1", "p2", "p3"]),
    ("Patient?_has:Observation:patient:code=8480-6", []),
    ("Patient?_has:DiagnosticReport:subject:status=final", ["p1"]),
    ("Patient?_has:Observation:subject:_has:DiagnosticReport:result:status=preliminary",
     ["p2"]),
    ("Organization?_has:Patient:organization:gender=female", ["org2"]),
    # _has checked per candidate of a small criterion
    ("Patient?_has:Observation:subject:code=2345-7&gender=female", ["p2", "p3"]),
    ("Patient?gender=female,male&_has:Observation:subject:code=2345-7&birthdate=lt1960",
     ["p1"]),
    ("Patient?_has:Observation:subject:_has:DiagnosticReport:result:status=preliminary"
     "&gender=female", ["p2"]),
    ("Patient?_has:Observation:subject:code=2345-7&_has:DiagnosticReport:subject:"
     "status=final&gender=male", ["p1"]),
    ("Patient?_has:Observation:subject:code=8480-6&gender=other", []),
    ("Patient?_has:Observation:subject:_id=o1,o2&gender=male", ["p1"]),
    # _id, compartments, system search
    ("Patient?_id=p1,p3", ["p1", "p3"]),
    ("Patient/p1/Observation", ["o1", "o3"]),
    ("Patient/p1/Observation?code=2345-7", ["o1"]),
    ("Patient/p2/DiagnosticReport", ["dr2"]),
    ("?_type=Patient,Observation&_id=p1,o1", ["o1", "p1"]),
    ("?_tag=http://alliance-fhir.org/fhir/CodeSystem/result-recognition|HR", ["o1", "p1"]),
]


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return sorted(e["resource"]["id"] for e in bundle.get("entry", [])
                  if e["search"]["mode"] == mode)


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
def test_search(data, url, expected):
    response = data.get("/" + url if not url.startswith("?") else url)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert ids(bundle) == sorted(expected)
