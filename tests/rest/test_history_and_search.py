"""history at three levels, the first cut of search-type, _summary and _elements."""

from __future__ import annotations

import time

from support import PACKAGE_SIZE

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'


def seed(client, n: int = 5) -> None:
    for i in range(n):
        client.put(f"/Patient/p{i}", json={"resourceType": "Patient", "id": f"p{i}",
                                           "text": {"status": "generated", "div": DIV},
                                           "active": True, "gender": "male"})


def test_history_levels_and_paging(client):
    seed(client)
    client.put("/Organization/o", json={"resourceType": "Organization", "id": "o", "name": "院"})
    system = client.get("/_history").json()
    assert system["type"] == "history" and system["total"] == 6 + PACKAGE_SIZE
    page = client.get("/Patient/_history?_count=2").json()
    assert page["total"] == 5 and len(page["entry"]) == 2
    seen = [e["resource"]["id"] for e in page["entry"]]
    while (nxt := [link["url"] for link in page["link"] if link["relation"] == "next"]):
        page = client.get(nxt[0].split("/fhir", 1)[1]).json()
        client.put("/Patient/late", json={"resourceType": "Patient", "id": "late"})
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert seen == ["p4", "p3", "p2", "p1", "p0"]  # stable while others write
    instance = client.get("/Patient/p1/_history").json()
    assert instance["total"] == 1 and instance["entry"][0]["request"]["method"] == "PUT"


def test_history_since(client):
    client.put("/Patient/a", json={"resourceType": "Patient", "id": "a"})
    time.sleep(0.005)  # the next version gets a later millisecond
    client.put("/Patient/b", json={"resourceType": "Patient", "id": "b"})
    last = client.get("/Patient/b").json()["meta"]["lastUpdated"]
    since = client.get("/_history", params={"_since": last}).json()
    assert [e["resource"]["id"] for e in since["entry"]] == ["b"]
    client.put("/Patient/a", json={"resourceType": "Patient", "id": "a", "active": True})
    since = client.get("/_history", params={"_since": last}).json()
    assert [e["resource"]["id"] for e in since["entry"]] == ["a", "b"]
    assert client.get("/_history", params={"_since": "2999-01-01"}).json()["total"] == 0
    assert client.get("/_history", params={"_at": "2001"}).json()["total"] == 0


def _link(bundle: dict, relation: str) -> str | None:
    found = [link["url"] for link in bundle["link"] if link["relation"] == relation]
    return found[0].split("/fhir", 1)[1] if found else None


def test_search_type_by_id_and_paging(client):
    seed(client)
    assert client.get("/Patient").json()["total"] == 5
    found = client.get("/Patient?_id=p1,p3").json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["p1", "p3"]
    assert found["entry"][0]["search"]["mode"] == "match"
    page = client.get("/Patient?_count=2").json()
    assert "total" not in page and _link(page, "previous") is None
    ids = [e["resource"]["id"] for e in page["entry"]]
    while _link(page, "next"):
        page = client.get(_link(page, "next")).json()
        ids += [e["resource"]["id"] for e in page["entry"]]
    assert ids == ["p0", "p1", "p2", "p3", "p4"]
    back = client.get(_link(page, "previous")).json()
    assert [e["resource"]["id"] for e in back["entry"]] == ["p2", "p3"]
    assert client.get("/Patient?_summary=count").json()["total"] == 5
    assert "entry" not in client.get("/Patient?_summary=count").json() or not \
        client.get("/Patient?_summary=count").json()["entry"]
    posted = client.post("/Patient/_search", content="_id=p2",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert posted.json()["total"] == 1
    tampered = _link(client.get("/Patient?_count=2").json(), "next") + "x"
    assert client.get(tampered).status_code == 400


def test_unknown_search_parameters(client):
    seed(client, 1)
    lenient = client.get("/Patient?foo=bar&_count=5").json()
    assert lenient["link"][0]["url"].endswith("/Patient?_count=5")
    strict = client.get("/Patient?foo=bar", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and strict.json()["issue"][0]["expression"] == ["foo"]


def test_summary_and_elements_on_read(client):
    seed(client, 1)
    summary = client.get("/Patient/p0?_summary=true").json()
    assert "text" not in summary and summary["active"] is True
    assert summary["meta"]["tag"][0]["code"] == "SUBSETTED"
    text = client.get("/Patient/p0?_summary=text").json()
    assert set(text) == {"resourceType", "id", "meta", "text"}
    data = client.get("/Patient/p0?_summary=data").json()
    assert "text" not in data and data["gender"] == "male"
    elements = client.get("/Patient/p0?_elements=gender").json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    assert client.get("/Patient/p0?_summary=maybe").status_code == 400
    pretty = client.get("/Patient/p0?_pretty=true")
    assert pretty.text.startswith('{\n  "resourceType"')


def test_capability_statement_lists_what_works(client):
    statement = client.get("/metadata").json()
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert {"Patient", "Organization", "ServiceRequest", "NamingSystem"} <= types
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert codes == {"read", "vread", "update", "patch", "delete", "history-instance",
                     "history-type", "create", "search-type"}
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch",
                                                          "history-system", "search-system"}
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["name-pinyin"] == "string" and params["birthdate"] == "date"
    assert patient["conditionalDelete"] == "multiple"
    assert "Observation:subject" in patient["searchRevInclude"]
