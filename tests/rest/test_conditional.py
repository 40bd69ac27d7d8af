"""Conditional create, update, patch, delete and references: 0 / 1 / many matches."""

from __future__ import annotations

from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

MRN = "http://hospital.example/mrn"  # a local number system: no check character


def patient(number: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": number}],
            **extra}


def test_conditional_create(client):
    query = f"identifier={MRN}|11010519580314002X"
    first = client.post("/Patient", json=patient("11010519580314002X"),
                        headers={"If-None-Exist": query})
    assert first.status_code == 201
    again = client.post("/Patient", json=patient("11010519580314002X", gender="male"),
                        headers={"If-None-Exist": query})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and "gender" not in again.json()
    client.post("/Patient", json=patient("11010519580314002X"))  # a duplicate, made by hand
    many = client.post("/Patient", json=patient("11010519580314002X"),
                       headers={"If-None-Exist": query})
    assert many.status_code == 412
    bad = client.post("/Patient", json=patient("1"), headers={"If-None-Exist": "colour=red"})
    assert bad.status_code == 400


def test_conditional_update(client):
    created = client.put("/Patient?identifier=A1", json=patient("A1"))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = client.put("/Patient?identifier=A1", json=patient("A1", gender="female"))
    assert updated.status_code == 200 and updated.json()["id"] == pid
    assert updated.json()["meta"]["versionId"] == "2"
    wrong_id = client.put("/Patient?identifier=A1", json={**patient("A1"), "id": "other"})
    assert wrong_id.status_code == 400
    client.post("/Patient", json=patient("A1"))
    assert client.put("/Patient?identifier=A1", json=patient("A1")).status_code == 412
    with_id = client.put("/Patient?identifier=B2", json={**patient("B2"), "id": "b2"})
    assert with_id.status_code == 201 and with_id.json()["id"] == "b2"


def test_conditional_patch(client):
    client.put("/Patient/p", json={**patient("C3"), "id": "p"})
    patch = [{"op": "add", "path": "/active", "value": True}]
    headers = {"content-type": "application/json-patch+json"}
    response = client.patch("/Patient?identifier=C3", json=patch, headers=headers)
    assert response.status_code == 200 and response.json()["active"] is True
    assert client.patch("/Patient?identifier=none", json=patch,
                        headers=headers).status_code == 404
    client.post("/Patient", json=patient("C3"))
    assert client.patch("/Patient?identifier=C3", json=patch,
                        headers=headers).status_code == 412


def test_conditional_delete_single_and_multiple(client):
    for number in ("D1", "D1", "D2"):
        client.post("/Patient", json=patient(number, gender="male"))
    assert client.delete("/Patient?identifier=none").status_code == 204
    assert client.delete("/Patient?identifier=D2").status_code == 204
    response = client.delete("/Patient?identifier=D1",
                             headers={"Prefer": "return=OperationOutcome"})
    assert response.status_code == 200
    assert "2 Patient deleted" in response.json()["issue"][0]["diagnostics"]
    assert client.get("/Patient?gender=male&_total=accurate").json()["total"] == 0


def test_conditional_delete_limit(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", conditional_delete_max=1)
    with Client(build_app(settings)) as small:
        small.post("/Patient", json=patient("E"))
        small.post("/Patient", json=patient("E"))
        assert small.delete("/Patient?identifier=E").status_code == 412


def test_conditionals_inside_a_transaction(client):
    client.put("/Organization/org", json={
        "resourceType": "Organization", "id": "org",
        "identifier": [{"system": "http://alliance-fhir.org/fhir/sid/uscc",
                        "value": "12330000470051726F"}]})
    client.put("/Patient/old", json={**patient("OLD"), "id": "old"})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000001",
         "resource": {**patient("F1"), "managingOrganization": {
             "reference": "Organization?identifier=http://alliance-fhir.org/fhir/sid/uscc|"
                          "12330000470051726F"}},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": "identifier=F1"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient("G1", gender="male"),
         "request": {"method": "PUT", "url": "Patient?identifier=G1"}},
        {"request": {"method": "DELETE", "url": "Patient?identifier=OLD"}},
    ]}
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "201 Created", "201 Created", "204 No Content"]
    created = client.get("/Patient?identifier=F1").json()["entry"][0]["resource"]
    assert created["managingOrganization"]["reference"] == "Organization/org"
    assert client.get("/Patient/old").status_code == 410
    again = client.post("", json={**bundle, "entry": bundle["entry"][:2]})
    first, second = again.json()["entry"]
    assert first["response"]["status"] == "200 OK"  # found, not created again
    pid = first["response"]["location"].split("/")[1]
    obs = client.get("/" + second["response"]["location"].rsplit("/_history", 1)[0]).json()
    assert obs["subject"]["reference"] == f"Patient/{pid}" == f"Patient/{created['id']}"
    dangling = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**patient("H1"), "managingOrganization": {
            "reference": "Organization?identifier=nothing"}},
         "request": {"method": "POST", "url": "Patient"}}]}
    failed = client.post("", json=dangling)
    assert failed.status_code == 412
    assert failed.json()["issue"][0]["expression"] == [
        "Bundle.entry[0].resource.managingOrganization.reference"]
