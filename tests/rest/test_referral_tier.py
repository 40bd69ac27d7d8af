"""alliance-ref-2: a referral's direction must match the tiers of requester and performer."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator

import orjson
import pytest
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder

DEMO = orjson.loads((demo_folder() / "alliance-demo.json").read_bytes())
REFERRAL = next(e["resource"] for e in DEMO["entry"] if e["resource"]["id"] == "ref-up-1")
EXT = "http://alliance-fhir.org/fhir/StructureDefinition"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = Settings(storage=f"sqlite:///{tmp_path_factory.mktemp('tier') / 'tier.db'}")
    summary = asyncio.run(load_paths(settings, [demo_folder()]))
    assert summary.failed == 0
    with Client(build_app(settings)) as http:
        yield http


def referral(direction: str, requester: str, performer: str) -> dict:
    resource = copy.deepcopy(REFERRAL)
    del resource["id"]
    resource["extension"][0]["valueCoding"]["code"] = direction
    resource["requester"] = {"reference": requester}
    resource["performer"] = [{"reference": performer}]
    return resource


@pytest.mark.parametrize(("direction", "requester", "performer"), [
    ("up", "PractitionerRole/chen-jing-shuangfeng", "Organization/lead-cardiology"),  # 1 -> 3
    ("up", "PractitionerRole/wang-fang-county", "Organization/lead"),  # 2 -> 3
    ("down", "PractitionerRole/li-jianguo-lead", "Organization/gulu"),  # 3 -> 1
    ("down", "PractitionerRole/li-jianguo-lead", "Organization/county"),  # 3 -> 2
])
def test_referrals_that_follow_the_tiers_are_stored(client, direction, requester, performer):
    response = client.post("/ServiceRequest", json=referral(direction, requester, performer))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("direction", "requester", "performer", "tiers"), [
    ("up", "PractitionerRole/li-jianguo-lead", "Organization/gulu", (3, 1)),
    ("up", "PractitionerRole/wang-fang-county", "Organization/tcm", (2, 2)),
    ("down", "PractitionerRole/chen-jing-shuangfeng", "Organization/lead", (1, 3)),
])
def test_referrals_against_the_tiers_are_refused(client, direction, requester, performer, tiers):
    response = client.post("/ServiceRequest", json=referral(direction, requester, performer))
    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["ServiceRequest.performer[0]"]
    assert "alliance-ref-2" in issue["diagnostics"]
    assert "tier {} and the performer tier {}".format(*tiers) in issue["diagnostics"]
    assert ("上转" if direction == "up" else "下转") in issue["diagnostics"]


def test_tiers_resolve_inside_a_transaction_and_nothing_is_written(client):
    """A new township centre and a referral up from the lead hospital to it, in one Bundle:
    the rule sees the centre in the Bundle and the whole transaction is refused."""
    centre = {"resourceType": "Organization", "name": "新建乡卫生院",
              "type": [{"coding": [{"system": "http://alliance-fhir.org/fhir/CodeSystem/"
                                              "institution-type", "code": "C220"}]}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5a0c1b9e-2f57-4e43-9d35-a0d3c2f6c001", "resource": centre,
         "request": {"method": "POST", "url": "Organization"}},
        {"resource": referral("up", "PractitionerRole/li-jianguo-lead",
                              "urn:uuid:5a0c1b9e-2f57-4e43-9d35-a0d3c2f6c001"),
         "request": {"method": "POST", "url": "ServiceRequest"}},
    ]}
    response = client.post("", json=bundle)
    assert response.status_code == 422, response.text
    assert "alliance-ref-2" in response.text
    found = client.get("/Organization", params={"name": "新建乡卫生院"}).json()
    assert found.get("total", len(found.get("entry", []))) == 0


def test_a_referral_without_direction_or_known_tiers_is_not_judged(client):
    unknown = referral("up", "PractitionerRole/li-jianguo-lead", "Organization/gulu")
    unknown["extension"] = [{"url": f"{EXT}/referral-direction", "valueCoding": {
        "system": "http://alliance-fhir.org/fhir/CodeSystem/referral-direction",
        "code": "up"}}]
    del unknown["performer"], unknown["meta"]
    assert client.post("/ServiceRequest", json=unknown).status_code == 201
