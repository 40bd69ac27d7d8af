"""Search test helpers: loading resources in one batch, and reading a search's pages."""

from __future__ import annotations

from support import Client


def put_all(client: Client, resources: list[dict]) -> None:
    """PUT the resources in one batch."""
    entries = [{"resource": r, "request": {"method": "PUT",
                                           "url": f"{r['resourceType']}/{r['id']}"}}
               for r in resources]
    response = client.post("", json={"resourceType": "Bundle", "type": "batch",
                                     "entry": entries})
    assert response.status_code == 200, response.text


def lab(oid: str, code: str, date: str, value: int, **more: object) -> dict:
    """A final LOINC-coded Observation with a date and a quantity."""
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "effectiveDateTime": date, "valueQuantity": {"value": value}, **more}


def match_ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if e["search"]["mode"] == "match"]


def included(bundle: dict) -> list[str]:
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}"
                  for e in bundle.get("entry", []) if e["search"]["mode"] == "include")


def link(bundle: dict, relation: str) -> str | None:
    found = [x["url"] for x in bundle["link"] if x["relation"] == relation]
    return found[0].split("/fhir", 1)[1] if found else None


def walk(client: Client, url: str) -> tuple[list[str], list[str]]:
    """The match ids of every page following ``next`` from ``url``, then of every page
    following ``previous`` back from the last one (both in result order)."""
    page = client.get(url).json()
    forwards = match_ids(page)
    while link(page, "next"):
        page = client.get(link(page, "next")).json()
        forwards += match_ids(page)
    backwards = match_ids(page)
    while link(page, "previous"):
        page = client.get(link(page, "previous")).json()
        backwards = match_ids(page) + backwards
    return forwards, backwards
