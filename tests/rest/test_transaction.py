"""transaction and batch Bundles."""

from __future__ import annotations

import base64

import orjson

PATIENT_URN = "urn:uuid:9b5c1c2e-0d4e-4a44-8f5e-6a0b5c1c2e0d"


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict, full_url: str | None = None) -> dict:
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def observation(subject: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "K"},
            "subject": {"reference": subject}}


def test_transaction_resolves_urn_uuid_references(client):
    bundle = tx(post(observation(PATIENT_URN)),
                post({"resourceType": "Patient", "name": [{"text": "王五"}]}, PATIENT_URN))
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    obs_entry, patient_entry = body["entry"]
    assert patient_entry["response"]["status"] == "201 Created"
    patient_id = patient_entry["response"]["location"].split("/")[1]
    obs = client.get("/" + obs_entry["response"]["location"].rsplit("/_history", 1)[0]).json()
    assert obs["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_is_all_or_nothing(client):
    bundle = tx(post({"resourceType": "Patient"}),
                {"resource": {"resourceType": "Patient", "id": "x", "bogus": 1},
                 "request": {"method": "PUT", "url": "Patient/x"}})
    response = client.post("", json=bundle)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.Patient.bogus"]
    assert client.get("/Patient").json()["total"] == 0
    dangling = tx(post({"resourceType": "Patient"}), post(observation("Patient/missing")))
    assert client.post("", json=dangling).status_code == 400
    assert client.get("/Patient").json()["total"] == 0


def test_transaction_processing_order_and_outcomes(client):
    client.put("/Patient/old", json={"resourceType": "Patient", "id": "old"})
    client.put("/Patient/keep", json={"resourceType": "Patient", "id": "keep"})
    patch = [{"op": "add", "path": "/active", "value": True}]
    bundle = tx(
        {"request": {"method": "GET", "url": "Patient/keep"}},
        {"resource": {"resourceType": "Patient", "id": "new"},
         "request": {"method": "PUT", "url": "Patient/new"}},
        {"request": {"method": "DELETE", "url": "Patient/old"}},
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                      "data": base64.b64encode(orjson.dumps(patch)).decode()},
         "request": {"method": "PATCH", "url": "Patient/keep"}},
    )
    response = client.post("", json=bundle, headers={"Prefer": "return=representation"})
    assert response.status_code == 200, response.text
    get, put, delete, patched = response.json()["entry"]
    assert get["response"]["status"] == "200 OK" and get["resource"]["active"] is True
    assert put["response"]["status"] == "201 Created" and put["resource"]["id"] == "new"
    assert delete["response"]["status"] == "204 No Content"
    assert patched["resource"]["active"] is True
    assert client.get("/Patient/old").status_code == 410


def test_transaction_if_match_and_duplicates(client):
    client.put("/Patient/a", json={"resourceType": "Patient", "id": "a"})
    stale = tx({"resource": {"resourceType": "Patient", "id": "a"},
                "request": {"method": "PUT", "url": "Patient/a", "ifMatch": 'W/"7"'}})
    assert client.post("", json=stale).status_code == 412
    twice = tx(*[{"resource": {"resourceType": "Patient", "id": "a"},
                  "request": {"method": "PUT", "url": "Patient/a"}}] * 2)
    response = client.post("", json=twice)
    assert response.status_code == 400 and "more than one entry" in response.text


def test_batch_entries_succeed_or_fail_alone(client):
    bundle = tx(post({"resourceType": "Patient"}),
                post({"resourceType": "Patient", "bogus": True}),
                {"request": {"method": "GET", "url": "Patient/none"}},
                {"request": {"method": "GET", "url": "Patient?_count=5"}},
                {"nothing": True},
                kind="batch")
    response = client.post("", json=bundle)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found", "200 OK",
                        "400 Bad Request"]
    outcome = response.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Patient.bogus"]
    assert response.json()["entry"][3]["resource"]["type"] == "searchset"
