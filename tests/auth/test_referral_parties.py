"""With auth on, only the receiving organisation's staff move a referral forward, and only
the referring side cancels it (the demo alliance, users from an OpenID Connect issuer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from oidc_issuer import Issuer, running_issuer
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings

TIER = "http://alliance-fhir.org/fhir/StructureDefinition/access-tier"
CS = "http://alliance-fhir.org/fhir/CodeSystem"


def _role(id: str, organization: str) -> dict:
    return {"resourceType": "PractitionerRole", "id": id, "active": True,
            "practitioner": {"reference": "Practitioner/li-jianguo"},
            "organization": {"reference": f"Organization/{organization}"},
            "extension": [{"url": TIER, "valueCode": "alliance"}]}


# the referral ref-up-1-like: requested by chen-jing at shuangfeng, owned by the lead hospital
ROLES = [_role("lead-nurse", "lead"), _role("cardiology-doctor", "lead-cardiology"),
         _role("county-doctor", "county"), _role("shuangfeng-nurse", "shuangfeng")]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Issuer]]:
    settings = Settings(storage=f"sqlite:///{tmp_path_factory.mktemp('parties') / 'p.db'}")
    load_demo(settings)
    with Client(build_app(settings)) as open_client:
        for role in ROLES:
            assert open_client.put(f"/PractitionerRole/{role['id']}", json=role).is_success
    with running_issuer() as issuer, Client(build_app(replace(
            settings, auth="smart", oidc_issuer=issuer.url,
            oidc_audience=issuer.audience))) as client:
        yield client, issuer


def _move(secured: tuple[Client, Issuer], user: str, task_id: str, status: str) -> int:
    client, issuer = secured
    headers = {"authorization": f"Bearer {issuer.token(f'PractitionerRole/{user}')}"}
    task = client.get(f"/Task/{task_id}", headers=headers).json()
    task["status"] = status
    if status == "rejected":
        task["statusReason"] = {"coding": [{"system": f"{CS}/referral-rejection-reason",
                                            "code": "beyond-capability"}]}
    return client.put(f"/Task/{task_id}", json=task, headers=headers).status_code


def _new_task(secured: tuple[Client, Issuer], id: str) -> str:
    """A new upward referral of chen-jing's patient to the lead hospital, sent by him."""
    client, issuer = secured
    headers = {"authorization": "Bearer " + issuer.token(
        "PractitionerRole/chen-jing-shuangfeng")}
    referral = client.get("/ServiceRequest/ref-up-1", headers=headers).json()
    task = client.get("/Task/task-up-1", headers=headers).json()
    referral.update(id=f"sr-{id}", status="active")
    referral.pop("identifier")
    task.update(id=id, status="requested", focus={"reference": f"ServiceRequest/sr-{id}"},
                basedOn=[{"reference": f"ServiceRequest/sr-{id}"}])
    for resource in (referral, task):
        del resource["meta"]
    answer = client.post("/", headers=headers, json={
        "resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in (referral, task)]})
    assert answer.status_code == 200, answer.text
    return id


@pytest.mark.parametrize(("user", "allowed"), [
    ("lead-nurse", True), ("cardiology-doctor", True),  # the owner and its department
    ("county-doctor", False), ("shuangfeng-nurse", False), ("chen-jing-shuangfeng", False)])
def test_only_the_receiving_side_receives_and_accepts(secured, user, allowed):
    task = _new_task(secured, f"recv-{user}")
    assert _move(secured, user, task, "received") == (200 if allowed else 403)
    if not allowed:
        assert _move(secured, "lead-nurse", task, "received") == 200
    assert _move(secured, user, task, "rejected") == (200 if allowed else 403)


@pytest.mark.parametrize(("user", "allowed"), [
    ("chen-jing-shuangfeng", True), ("shuangfeng-nurse", True),  # the requester and its side
    ("lead-nurse", False), ("county-doctor", False)])
def test_only_the_referring_side_cancels(secured, user, allowed):
    task = _new_task(secured, f"cancel-{user}")
    assert _move(secured, user, task, "cancelled") == (200 if allowed else 403)
