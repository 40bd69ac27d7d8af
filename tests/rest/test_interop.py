"""What third-party clients (fhirpy, fhir.resources, HAPI's client, fhir-kit-client) need:
mandatory elements kept by ``_elements``, ``total`` whenever it is known, errors inside
Bundles that name their entry."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import Client

from fhir_server.app import build_app

SUBSETTED = "SUBSETTED"


def seed(client, n: int = 3) -> None:
    for i in range(n):
        client.put(f"/ValueSet/vs{i}", json={
            "resourceType": "ValueSet", "id": f"vs{i}", "url": f"http://example.org/vs{i}",
            "status": "active", "name": f"VS{i}", "description": "long text"})


def test_elements_keeps_the_mandatory_elements(client):
    seed(client, 1)
    bundle = client.get("/ValueSet", params={"_elements": "url", "url": "http://example.org/vs0"})
    resource = bundle.json()["entry"][0]["resource"]
    assert resource["url"] == "http://example.org/vs0"
    assert resource["status"] == "active"  # ValueSet.status is 1..1
    assert "name" not in resource and "description" not in resource
    assert any(t["code"] == SUBSETTED for t in resource["meta"]["tag"])
    read = client.get("/ValueSet/vs0", params={"_elements": "name"}).json()
    assert set(read) == {"resourceType", "id", "meta", "name", "status"}


def test_elements_names_a_choice_by_its_base(client):
    client.put("/Observation/o", json={
        "resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
        "valueQuantity": {"value": 1}, "issued": "2026-01-01T00:00:00Z"})
    for name in ("value", "value[x]"):
        read = client.get("/Observation/o", params={"_elements": name}).json()
        assert read["valueQuantity"] == {"value": 1} and "issued" not in read
        assert read["status"] == "final" and read["code"] == {"text": "x"}


def patients(client, n: int = 3) -> None:
    for i in range(n):
        client.put(f"/Patient/p{i}", json={"resourceType": "Patient", "id": f"p{i}"})


def test_total_when_one_page_holds_every_match(client):
    patients(client)
    assert client.get("/Patient").json()["total"] == 3
    assert client.get("/Patient", params={"_total": "none"}).json().get("total") is None
    paged = client.get("/Patient", params={"_count": "2"}).json()
    assert "total" not in paged  # not known without counting
    assert client.get("/Patient", params={"_count": "2", "_total": "accurate"}).json()[
        "total"] == 3


def test_count_zero_answers_the_total(client):
    patients(client)
    bundle = client.get("/Patient", params={"_count": "0"}).json()
    assert bundle["total"] == 3 and not bundle.get("entry")


def test_a_dangling_reference_in_a_transaction_names_its_entry(client):
    answer = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"},
         "request": {"method": "PUT", "url": "Patient/a"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient/nobody"}},
         "request": {"method": "POST", "url": "Observation"}}]})
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.subject.reference"]
    assert "Patient/nobody" in issue["diagnostics"]
    assert client.get("/Patient/a").status_code == 404  # nothing half-written


def test_an_unchanged_update_makes_no_version(client):
    patient = {"resourceType": "Patient", "id": "same", "gender": "female"}
    assert client.put("/Patient/same", json=patient).status_code == 201
    again = client.put("/Patient/same", json=patient)
    assert again.status_code == 200 and again.headers["etag"] == 'W/"1"'
    assert client.get("/Patient/same/_history").json()["total"] == 1
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "PUT", "url": "Patient/same"}}]}
    answer = client.post("", json=bundle).json()["entry"][0]["response"]
    assert answer["status"].startswith("200") and answer["etag"] == 'W/"1"'
    changed = client.put("/Patient/same", json={**patient, "gender": "male"})
    assert changed.headers["etag"] == 'W/"2"'


def test_unchanged_updates_make_versions_when_configured(settings):
    with Client(build_app(replace(settings, skip_unchanged_updates=False))) as client:
        patient = {"resourceType": "Patient", "id": "same"}
        client.put("/Patient/same", json=patient)
        assert client.put("/Patient/same", json=patient).headers["etag"] == 'W/"2"'


RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
USCC = "http://alliance-fhir.org/fhir/sid/uscc"


def test_a_resident_id_belongs_to_one_patient(client):
    ident = [{"system": RESIDENT_ID, "value": "11010519491231002X"}]
    first = client.post("/Patient", json={"resourceType": "Patient", "identifier": ident})
    assert first.status_code == 201
    holder = first.headers["location"].split("/fhir/")[1].split("/_history")[0]
    second = client.post("/Patient", json={"resourceType": "Patient", "identifier": ident})
    assert second.status_code == 409
    issue = second.json()["issue"][0]
    assert holder in issue["diagnostics"] and issue["expression"] == ["Patient.identifier"]
    # the holder itself may be updated, and a practitioner may carry the same number
    pid = holder.split("/")[1]
    assert client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                               "identifier": ident,
                                               "gender": "female"}).status_code == 200
    assert client.post("/Practitioner", json={"resourceType": "Practitioner",
                                              "identifier": ident}).status_code == 201
    assert client.get("/Patient").json()["total"] == 1


def test_a_duplicate_uscc_inside_a_transaction_names_the_entry(client):
    org = {"resourceType": "Organization", "name": "古路镇中心卫生院",
           "identifier": [{"system": USCC, "value": "12330000470051726F"}]}
    answer = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": org, "request": {"method": "POST", "url": "Organization"}},
        {"resource": org, "request": {"method": "POST", "url": "Organization"}}]})
    assert answer.status_code == 409
    assert answer.json()["issue"][0]["expression"][0].startswith("Bundle.entry[")
    assert answer.json()["issue"][0]["expression"][0].endswith("].resource.identifier")
    assert client.get("/Organization", params={"identifier": f"{USCC}|12330000470051726F"}
                      ).json()["total"] == 0  # nothing half-written


def test_unique_identifier_systems_are_configurable(settings):
    with Client(build_app(replace(settings, unique_identifiers=""))) as client:
        ident = [{"system": RESIDENT_ID, "value": "11010519491231002X"}]
        for _ in range(2):
            assert client.post("/Patient", json={"resourceType": "Patient",
                                                 "identifier": ident}).status_code == 201


def test_version_conflicts_and_referenced_deletes_in_a_transaction_name_their_entry(client):
    client.put("/Patient/v", json={"resourceType": "Patient", "id": "v"})
    client.put("/Observation/o", json={"resourceType": "Observation", "id": "o",
                                       "status": "final", "code": {"text": "x"},
                                       "subject": {"reference": "Patient/v"}})
    stale = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "w"},
         "request": {"method": "PUT", "url": "Patient/w"}},
        {"resource": {"resourceType": "Patient", "id": "v", "active": True},
         "request": {"method": "PUT", "url": "Patient/v", "ifMatch": 'W/"7"'}}]})
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource"]
    referenced = client.post("", json={"resourceType": "Bundle", "type": "transaction",
                                       "entry": [{"request": {"method": "DELETE",
                                                              "url": "Patient/v"}}]})
    assert referenced.status_code == 409
    assert referenced.json()["issue"][0]["expression"] == ["Bundle.entry[0]"]


@pytest.mark.sqlite_only("its index keeps each code's count; MongoDB counts only when asked")
def test_total_of_one_code_without_asking(client):
    for i in range(5):
        client.put(f"/Observation/o{i}", json={
            "resourceType": "Observation", "id": f"o{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}})
    page = client.get("/Observation", params={"code": "http://loinc.org|2345-7",
                                              "_count": "2"}).json()
    assert page["total"] == 5 and len(page["entry"]) == 2  # kept by the index: no count
    following = next(x["url"] for x in page["link"] if x["relation"] == "next")
    assert client.get(following.split("/fhir", 1)[1]).json()["total"] == 5


def test_fhirpy_count_asks_for_the_total(client):
    patients(client, 25)
    page = client.get("/Patient", params={"_totalMethod": "count"},
                      headers={"prefer": "handling=strict"}).json()
    assert page["total"] == 25


def test_the_capability_statement_follows_new_search_parameters(client):
    def patient_params() -> set[str]:
        statement = client.get("/metadata").json()
        patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
        return {p["name"] for p in patient["searchParam"]}

    assert "nickname" not in patient_params()
    client.put("/SearchParameter/nickname", json={
        "resourceType": "SearchParameter", "id": "nickname", "status": "active",
        "url": "http://example.org/SearchParameter/nickname", "name": "nickname",
        "description": "x", "code": "nickname", "base": ["Patient"], "type": "string",
        "expression": "Patient.name.given"})
    assert client.post("/$reindex").status_code == 200
    assert "nickname" in patient_params()
