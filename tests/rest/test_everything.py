"""Patient $everything, ``Patient/{id}/*`` and ``_include=*`` / ``_revinclude=*`` on the demo
alliance."""

from __future__ import annotations

import pytest
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.search.registry import r4_definitions


def keys(client: Client, url: str, mode: str = "match", **params: str) -> list[str]:
    """Every entry of a search of this mode, following next links."""
    found: list[str] = []
    page = client.get(url, params=params).json()
    while True:
        assert page["resourceType"] == "Bundle", page
        found += [f"{e['resource']['resourceType']}/{e['resource']['id']}"
                  for e in page.get("entry", []) if e["search"]["mode"] == mode]
        following = [x["url"] for x in page["link"] if x["relation"] == "next"]
        if not following:
            return found
        page = client.get(following[0].split("/fhir", 1)[1]).json()


def compartment(client: Client, pid: str) -> set[str]:
    """The patient's compartment, one compartment search per type."""
    types = r4_definitions()["compartments"]["Patient"]
    return {k for t in types for k in keys(client, f"/Patient/{pid}/{t}", _count="100")}


def test_everything_pages_through_the_patient_and_its_compartment(demo):
    expected = compartment(demo, "zhang-san") | {"Patient/zhang-san"}
    assert {k.split("/")[0] for k in expected} >= {"ServiceRequest", "DiagnosticReport",
                                                   "Observation"}
    found = keys(demo, "/Patient/zhang-san/$everything", _count="3")
    assert len(found) == len(set(found)) and set(found) == expected
    first = demo.get("/Patient/zhang-san/$everything").json()
    assert first["type"] == "searchset" and first["total"] == len(expected)
    included = set(keys(demo, "/Patient/zhang-san/$everything", "include", _count="100"))
    assert "Organization/gulu" in included or any(k.startswith("Organization/")
                                                  for k in included)
    assert any(k.startswith("PractitionerRole/") for k in included)


def test_everything_by_type_since_and_as_post(demo):
    only = keys(demo, "/Patient/zhang-san/$everything", _type="Observation,Patient")
    assert {k.split("/")[0] for k in only} == {"Observation", "Patient"}
    later = keys(demo, "/Patient/zhang-san/$everything", _since="2999-01-01T00:00:00Z")
    assert later == []
    posted = demo.post("/Patient/zhang-san/$everything", json={
        "resourceType": "Parameters", "parameter": [
            {"name": "_type", "valueString": "ServiceRequest"}, {"name": "_count",
                                                                  "valueInteger": 1}]})
    assert posted.status_code == 200
    assert posted.json()["total"] == len(keys(demo, "/Patient/zhang-san/ServiceRequest"))


def test_everything_for_every_patient(demo):
    every = set(keys(demo, "/Patient/$everything", _count="50"))
    patients = set(keys(demo, "/Patient"))
    assert patients <= every
    for patient in patients:
        assert compartment(demo, patient.split("/")[1]) <= every


@pytest.mark.parametrize(("url", "params", "status", "expression"), [
    ("/Patient/nobody/$everything", {}, 404, "Patient/nobody"),
    ("/Patient/zhang-san/$everything", {"_since": "yesterday"}, 400, "_since"),
    ("/Patient/zhang-san/$everything", {"_type": "Nothing"}, 404, "Nothing"),
    ("/Patient/zhang-san/$everything", {"_type": "Organization"}, 400, "_type"),
    ("/Patient/zhang-san/$everything", {"start": "2024"}, 400, "start"),
    ("/Patient/zhang-san/$everything", {"colour": "red"}, 400, "colour"),
    ("/Organization/lead/*", {}, 400, "Organization/lead/*"),
])
def test_everything_bad_input(demo, url, params, status, expression):
    answer = demo.get(url, params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["issue"][0]["expression"] == [expression]


def test_everything_refuses_a_body_that_is_not_parameters(demo):
    answer = demo.post("/Patient/zhang-san/$everything", json={"resourceType": "Patient"})
    assert answer.status_code == 400 and answer.json()["issue"][0]["expression"] == [
        "resourceType"]


def test_the_whole_compartment_of_a_patient(demo):
    assert set(keys(demo, "/Patient/zhang-san/*", _count="4")) == compartment(demo,
                                                                               "zhang-san")


def test_include_and_revinclude_star(demo):
    reports = demo.get("/DiagnosticReport", params={"_include": "*", "_count": "100"}).json()
    included = {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in reports["entry"] if e["search"]["mode"] == "include"}
    expected = set()
    for entry in reports["entry"]:
        if entry["search"]["mode"] == "match":
            report = entry["resource"]
            expected |= {r["reference"] for r in report.get("result", [])}
            expected.add(report["subject"]["reference"])
    assert expected <= included
    patient = demo.get("/Patient", params={"_id": "zhang-san", "_revinclude": "*"}).json()
    referrers = {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                 for e in patient["entry"] if e["search"]["mode"] == "include"}
    assert compartment(demo, "zhang-san") <= referrers


def test_include_star_is_bounded_by_the_include_limit(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'l.db'}", include_limit=2)
    load_demo(settings)
    with Client(build_app(settings)) as client:
        bundle = client.get("/Patient", params={"_id": "zhang-san",
                                                "_revinclude": "*"}).json()
        modes = [e["search"]["mode"] for e in bundle["entry"]]
        assert modes.count("include") == 2 and modes[-1] == "outcome"
