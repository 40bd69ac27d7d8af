"""Unmodified Synthea transaction bundles load through the REST API and read back whole:
Encounter, Claim, ExplanationOfBenefit, Immunization, Procedure, MedicationRequest, CarePlan…
(every R4 type is served), on a server allowing extensions it has no definition of (US Core's
and Synthea's own); without that setting they are refused (422, naming each)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

BUNDLES = sorted((Path(__file__).resolve().parent.parent / "data" / "synthea").glob("*.json"))


@pytest.fixture
def client(settings: Settings):
    with Client(build_app(replace(settings, allow_any_extension=True))) as client:
        yield client


def test_unknown_extensions_are_refused_by_default(settings):
    with Client(build_app(settings)) as strict:
        response = strict.post("", content=BUNDLES[0].read_bytes(),
                               headers={"content-type": "application/fhir+json"})
    assert response.status_code == 422
    assert "us-core-race could not be found" in response.text


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name[:13])
def test_a_synthea_bundle_loads_and_round_trips(client, path):
    bundle = orjson.loads(path.read_bytes())
    response = client.post("", content=path.read_bytes(),
                           headers={"content-type": "application/fhir+json"})
    assert response.status_code == 200, response.text
    answers = response.json()["entry"]
    assert len(answers) == len(bundle["entry"])
    assert all(a["response"]["status"].startswith("201") for a in answers)
    for entry, answer in zip(bundle["entry"], answers, strict=True):
        stored = client.get(answer["response"]["location"].split("/_history")[0]).json()
        sent = entry["resource"]
        assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == \
            {k: v for k, v in sent.items() if k not in ("id", "meta") and
             not _has_urn(v)} | {k: v for k, v in stored.items() if _has_urn(sent.get(k))}
    counts = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    patient = next(a["response"]["location"] for a in answers
                   if a["response"]["location"].startswith("Patient/"))
    pid = patient.split("/")[1]
    encounters = client.get("/Encounter", params={"patient": pid, "_count": "100"}).json()
    assert encounters["total"] == counts["Encounter"]
    claims = client.get(f"/Patient/{pid}/Claim").json()
    assert claims["total"] == counts["Claim"]


def _has_urn(value: object) -> bool:
    """Whether a value holds a ``urn:uuid`` reference (rewritten to the new id on commit)."""
    return b'"urn:uuid:' in orjson.dumps(value)
