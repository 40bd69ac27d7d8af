"""$expunge: erasure of a resource and every version of it (PIPL art. 47), recorded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import Client

from fhir_server.app import build_app


@pytest.fixture
def erasing(settings):
    with Client(build_app(replace(settings, expunge=True))) as client:
        yield client


def _patient_with_history(client: Client, rid: str = "p") -> None:
    client.put(f"/Patient/{rid}", json={"resourceType": "Patient", "id": rid,
                                        "name": [{"text": "张三"}],
                                        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                                                        "value": "11010519491231002X"}]})
    client.put(f"/Patient/{rid}", json={"resourceType": "Patient", "id": rid,
                                        "name": [{"text": "张三丰"}]})


def test_every_version_and_index_entry_is_erased_and_recorded(erasing):
    _patient_with_history(erasing)
    response = erasing.post("/Patient/p/$expunge")
    assert response.status_code == 200, response.text
    assert response.json()["parameter"] == [{"name": "count", "valueInteger": 1},
                                            {"name": "erased", "valueString": "Patient/p"}]
    assert erasing.get("/Patient/p").status_code == 404  # not 410: nothing is left
    assert erasing.get("/Patient/p/_history/1").status_code == 404
    assert erasing.get("/Patient/p/_history").json().get("total", 0) == 0
    assert erasing.get("/Patient", params={"name": "张三"}).json()["total"] == 0
    assert erasing.get("/Patient", params={
        "identifier": "urn:oid:2.16.156.10011.1.3|11010519491231002X"}).json()["total"] == 0
    history = erasing.get("/_history").json()
    assert all("张三" not in str(e) for e in history.get("entry", []))
    [audit] = erasing.get("/AuditEvent").json()["entry"]
    assert audit["resource"]["entity"][0]["what"] == {"display": "Patient/p"}
    assert "张三" not in str(audit)
    _patient_with_history(erasing)  # the id and the resident ID are free again
    assert erasing.get("/Patient/p/_history").json()["total"] == 2  # versions start anew


def test_a_referenced_resource_is_refused_unless_cascading(erasing):
    _patient_with_history(erasing)
    erasing.put("/Observation/o", json={"resourceType": "Observation", "id": "o",
                                        "status": "final", "code": {"text": "血糖"},
                                        "subject": {"reference": "Patient/p"}})
    erasing.put("/Provenance/v", json={"resourceType": "Provenance", "id": "v",
                                       "target": [{"reference": "Observation/o"}],
                                       "recorded": "2026-12-01T08:00:00+08:00",
                                       "agent": [{"who": {"display": "LIS"}}]})
    refused = erasing.post("/Patient/p/$expunge")
    assert refused.status_code == 409
    assert "Observation/o" in refused.json()["issue"][0]["diagnostics"]
    assert erasing.get("/Patient/p").status_code == 200  # nothing erased
    erased = erasing.post("/Patient/p/$expunge", params={"_cascade": "delete"})
    assert erased.status_code == 200
    assert [p.get("valueString") for p in erased.json()["parameter"][1:]] == \
        ["Patient/p", "Observation/o", "Provenance/v"]
    for path in ("/Patient/p", "/Observation/o", "/Provenance/v"):
        assert erasing.get(path).status_code == 404
    [audit] = erasing.get("/AuditEvent").json()["entry"]
    assert len(audit["resource"]["entity"]) == 3


def test_cascade_in_a_parameters_body(erasing):
    erasing.put("/Patient/q", json={"resourceType": "Patient", "id": "q"})
    erasing.put("/Observation/o", json={"resourceType": "Observation", "id": "o",
                                        "status": "final", "code": {"text": "血糖"},
                                        "subject": {"reference": "Patient/q"}})
    response = erasing.post("/Patient/q/$expunge", json={
        "resourceType": "Parameters", "parameter": [{"name": "cascade", "valueBoolean": True}]})
    assert response.status_code == 200
    assert response.json()["parameter"][0]["valueInteger"] == 2


def test_bad_expunge_requests(erasing, client):
    assert erasing.post("/Patient/nobody/$expunge").status_code == 404
    assert erasing.post("/Unicorn/x/$expunge").status_code == 404
    assert erasing.post("/Patient/p/$expunge", params={"_cascade": "yes"}).status_code == 400
    assert erasing.get("/Patient/p/$expunge").status_code == 400  # POST only
    client.put("/Patient/p", json={"resourceType": "Patient", "id": "p"})
    off = client.post("/Patient/p/$expunge")  # the default: switched off
    assert off.status_code == 403 and off.json()["issue"][0]["code"] == "forbidden"
    assert client.get("/Patient/p").status_code == 200
    names = [o["name"] for o in client.get("/metadata").json()["rest"][0]["operation"]]
    assert "expunge" not in names
    names = [o["name"] for o in erasing.get("/metadata").json()["rest"][0]["operation"]]
    assert "expunge" in names
