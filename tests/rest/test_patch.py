"""patch: JSON Patch, FHIRPath Patch, merge patch, If-Match."""

from __future__ import annotations

PATIENT = {"resourceType": "Patient", "id": "p", "name": [{"family": "张", "given": ["三"]}],
           "birthDate": "1958-03-14"}
JSON_PATCH = {"content-type": "application/json-patch+json"}


def operation(**parts) -> dict:
    part = []
    for name, value in parts.items():
        key = {"type": "valueCode", "index": "valueInteger", "source": "valueInteger",
               "destination": "valueInteger"}.get(name, "valueString")
        part.append({"name": name, key: value})
    return {"name": "operation", "part": part}


def fhirpath_patch(*operations: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def test_json_patch(client):
    client.put("/Patient/p", json=PATIENT)
    response = client.patch("/Patient/p", json=[
        {"op": "replace", "path": "/birthDate", "value": "1958-03-15"},
        {"op": "add", "path": "/name/0/given/-", "value": "丰"}], headers=JSON_PATCH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["birthDate"] == "1958-03-15" and body["name"][0]["given"] == ["三", "丰"]
    assert body["meta"]["versionId"] == "2"


def test_json_patch_errors(client):
    client.put("/Patient/p", json=PATIENT)
    failed_test = client.patch("/Patient/p", json=[{"op": "test", "path": "/birthDate",
                                                    "value": "2000"}], headers=JSON_PATCH)
    assert failed_test.status_code == 422
    bad_path = client.patch("/Patient/p", json=[{"op": "remove", "path": "/nothing"}],
                            headers=JSON_PATCH)
    assert bad_path.status_code == 400
    invalid_result = client.patch("/Patient/p", json=[{"op": "add", "path": "/colour",
                                                       "value": "red"}], headers=JSON_PATCH)
    assert invalid_result.status_code == 400
    assert invalid_result.json()["issue"][0]["expression"] == ["Patient.colour"]
    assert client.patch("/Patient/missing", json=[], headers=JSON_PATCH).status_code == 404
    stale = client.patch("/Patient/p", json=[], headers={**JSON_PATCH, "If-Match": 'W/"9"'})
    assert stale.status_code == 412
    assert client.get("/Patient/p").json()["meta"]["versionId"] == "1"


def test_fhirpath_patch(client):
    client.put("/Patient/p", json=PATIENT)
    body = fhirpath_patch(
        operation(type="replace", path="Patient.birthDate", value="1958-04-01"),
        operation(type="add", path="Patient", name="gender", value="male"),
        operation(type="insert", path="Patient.name[0].given", index=0, value="小"),
        operation(type="delete", path="Patient.name.where(family='无')"),
    )
    response = client.patch("/Patient/p", json=body)
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["birthDate"] == "1958-04-01" and patched["gender"] == "male"
    assert patched["name"][0]["given"] == ["小", "三"]
    unsupported = client.patch("/Patient/p", json=fhirpath_patch(
        operation(type="delete", path="Patient.name.select(given)")))
    assert unsupported.status_code == 400
    assert "Unsupported FHIRPath" in unsupported.json()["issue"][0]["diagnostics"]


def test_merge_patch(client):
    client.put("/Patient/p", json=PATIENT)
    response = client.patch("/Patient/p", json={"birthDate": None, "active": True},
                            headers={"content-type": "application/merge-patch+json"})
    assert response.status_code == 200
    assert "birthDate" not in response.json() and response.json()["active"] is True
