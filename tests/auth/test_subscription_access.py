"""A subscriber is told only of what they could read themselves: a Subscription records
its owner, and its criteria run under the owner's tier."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
from oidc_issuer import running_issuer
from receiver import running_receiver
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

TIER = "http://alliance-fhir.org/fhir/StructureDefinition/access-tier"
OWNER = "http://alliance-fhir.org/fhir/StructureDefinition/subscription-owner"
ALLIANCE = [
    {"resourceType": "Organization", "id": "hosp", "name": "医院"},
    {"resourceType": "Practitioner", "id": "pa", "name": [{"family": "王"}]},
    {"resourceType": "Practitioner", "id": "pb", "name": [{"family": "李"}]},
    {"resourceType": "PractitionerRole", "id": "own", "practitioner": {
        "reference": "Practitioner/pa"}, "organization": {"reference": "Organization/hosp"}},
    {"resourceType": "PractitionerRole", "id": "all", "practitioner": {
        "reference": "Practitioner/pb"}, "organization": {"reference": "Organization/hosp"},
     "extension": [{"url": TIER, "valueCode": "alliance"}]},
    {"resourceType": "Patient", "id": "p1", "generalPractitioner": [
        {"reference": "Practitioner/pa"}]},
    {"resourceType": "Patient", "id": "p2"},
]


def test_notifications_carry_only_what_the_owner_may_read(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'sub.db'}")
    with Client(build_app(settings)) as open_client:
        for resource in ALLIANCE:
            assert open_client.put(f"/{resource['resourceType']}/{resource['id']}",
                                   json=resource).is_success
    with running_issuer() as issuer, running_receiver() as receiver, Client(build_app(replace(
            settings, auth="smart", oidc_issuer=issuer.url,
            oidc_audience=issuer.audience))) as client:
        def auth(user: str) -> dict:
            return {"authorization": f"Bearer {issuer.token(f'PractitionerRole/{user}')}"}
        created = client.post("/Subscription", headers=auth("own"), json={
            "resourceType": "Subscription", "status": "requested", "reason": "新结果",
            "criteria": "Observation?code=718-7", "extension": [
                {"url": OWNER, "valueReference": {"reference": "PractitionerRole/all"}}],
            "channel": {"type": "rest-hook", "endpoint": receiver.url,
                        "payload": "application/fhir+json"}})
        assert created.status_code == 201, created.text
        assert created.json()["extension"] == [
            {"url": OWNER, "valueReference": {"reference": "PractitionerRole/own"}}]
        for patient in ("p2", "p1"):
            answer = client.post("/Observation", headers=auth("all"), json={
                "resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "subject": {"reference": f"Patient/{patient}"}})
            assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not receiver.requests:
            client.runner.run(asyncio.sleep(0.05))
        client.runner.run(asyncio.sleep(0.5))
        [notified] = receiver.requests  # p1's, not p2's
        assert orjson.loads(notified.body)["subject"] == {"reference": "Patient/p1"}
