"""A third-party client nobody here wrote (fhirpy) against a real server process with the
demo alliance: create, search (Chinese, pinyin), count, page through, patch, delete."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from server_process import ServerProcess

PATIENT = "http://alliance-fhir.org/fhir/StructureDefinition/AlliancePatient"


@pytest.fixture(scope="module")
def fhir(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("clients") / "demo.db", "--demo")
    try:
        yield SyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
    finally:
        server.stop()


def test_fhirpy_searches_counts_and_pages(fhir):
    assert [p["id"] for p in fhir.resources("Patient").search(**{"name-pinyin": "zs"})
            .fetch()] == ["zhang-san"]
    assert fhir.resources("Patient").search(name="张").count() >= 1
    referrals = fhir.resources("ServiceRequest").limit(1)
    assert referrals.count() == 3 and len(referrals.fetch_all()) == 3
    everything = fhir.resources("Patient").search(_id="zhang-san").revinclude(
        "ServiceRequest", "subject").fetch_raw()
    assert any(e["resource"]["resourceType"] == "ServiceRequest"
               for e in everything["entry"])


def test_fhirpy_writes(fhir):
    patient = fhir.resource("Patient", meta={"profile": [PATIENT]}, gender="female",
                            name=[{"text": "赵六"}])
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"
    patient["birthDate"] = "1990-01-02"
    patient.save()
    assert fhir.reference("Patient", patient.id).to_resource()["birthDate"] == "1990-01-02"
    patient.patch(active=True)  # fhirpy sends a merge-style body
    assert fhir.reference("Patient", patient.id).to_resource()["active"] is True
    patient.delete()
    assert fhir.resources("Patient").search(_id=patient.id).count() == 0
