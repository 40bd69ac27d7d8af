"""read, vread, create, update, delete through the ASGI app."""

from __future__ import annotations

PATIENT = {"resourceType": "Patient", "name": [{"family": "张", "given": ["三"]}]}


def created_id(response) -> str:
    assert response.status_code == 201, response.text
    return response.headers["location"].split("/")[-3]


def test_create_returns_location_etag_and_body(client):
    response = client.post("/Patient", json=PATIENT)
    pid = created_id(response)
    assert response.headers["location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    body = response.json()
    assert body["id"] == pid and body["meta"]["versionId"] == "1"
    assert body["name"] == PATIENT["name"]


def test_create_ignores_client_id(client):
    pid = created_id(client.post("/Patient", json={**PATIENT, "id": "mine"}))
    assert pid != "mine"


def test_read_and_vread(client):
    pid = created_id(client.post("/Patient", json=PATIENT))
    client.put(f"/Patient/{pid}", json={**PATIENT, "id": pid, "gender": "male"})
    assert client.get(f"/Patient/{pid}").json()["gender"] == "male"
    first = client.get(f"/Patient/{pid}/_history/1")
    assert first.status_code == 200 and "gender" not in first.json()
    assert client.get(f"/Patient/{pid}/_history/9").status_code == 404
    assert client.get(f"/Patient/{pid}/_history/x").status_code == 404


def test_update_as_create_and_version_increment(client):
    response = client.put("/Patient/p1", json={**PATIENT, "id": "p1"})
    assert response.status_code == 201
    response = client.put("/Patient/p1", json={**PATIENT, "id": "p1", "active": True})
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"


def test_if_match(client):
    client.put("/Patient/p1", json={**PATIENT, "id": "p1"})
    changed = {**PATIENT, "id": "p1", "active": True}
    ok = client.put("/Patient/p1", json=changed, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = client.put("/Patient/p1", json=changed, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.delete("/Patient/p1", headers={"If-Match": 'W/"1"'}).status_code == 412


def test_delete_is_versioned(client):
    client.put("/Patient/p1", json={**PATIENT, "id": "p1"})
    response = client.delete("/Patient/p1")
    assert response.status_code == 204
    assert response.headers["etag"] == 'W/"2"'
    gone = client.get("/Patient/p1")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get("/Patient/p1/_history/1").status_code == 200
    assert client.get("/Patient/p1/_history/2").status_code == 410
    history = client.get("/Patient/p1/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT"]
    assert client.delete("/Patient/p1").status_code == 204  # idempotent
    assert client.delete("/Patient/never").status_code == 204
    recreated = client.put("/Patient/p1", json={**PATIENT, "id": "p1"})
    assert recreated.status_code == 201 and recreated.json()["meta"]["versionId"] == "3"


def test_conditional_read(client):
    client.put("/Patient/p1", json={**PATIENT, "id": "p1"})
    response = client.get("/Patient/p1")
    assert client.get("/Patient/p1", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get("/Patient/p1", headers={"If-None-Match": 'W/"0"'}).status_code == 200
    since = response.headers["last-modified"]
    assert client.get("/Patient/p1", headers={"If-Modified-Since": since}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get("/Patient/p1", headers={"If-Modified-Since": old}).status_code == 200


def test_prefer_return(client):
    minimal = client.post("/Patient", json=PATIENT, headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post("/Patient", json=PATIENT,
                          headers={"Prefer": "return=OperationOutcome"})
    assert outcome.json()["resourceType"] == "OperationOutcome"
    deleted = client.delete(f"/Patient/{created_id(minimal)}",
                            headers={"Prefer": "return=OperationOutcome"})
    assert deleted.status_code == 200
    assert deleted.json()["resourceType"] == "OperationOutcome"
