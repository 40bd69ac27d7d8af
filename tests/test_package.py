"""The alliance package is installed into every server's storage at start-up: readable,
searchable, marked as the package's, written once, and upgraded when it changes."""

from __future__ import annotations

import shutil
from dataclasses import replace

import orjson
from support import PACKAGE, PACKAGE_SIZE, Client

from fhir_server.app import build_app
from fhir_server.package import PACKAGE_TAG_SYSTEM, packaged_folder

TAG = f"{PACKAGE_TAG_SYSTEM}|alliance.fhir.core"
PATIENT = "http://alliance-fhir.org/fhir/StructureDefinition/AlliancePatient"


def test_a_bare_server_serves_the_package(client):
    found = client.get("/StructureDefinition", params={"url": PATIENT}).json()
    assert found["total"] == 1
    profile = found["entry"][0]["resource"]
    assert profile["meta"]["source"].endswith("/alliance.fhir.core/0.1.0")
    assert {"system": PACKAGE_TAG_SYSTEM, "code": "alliance.fhir.core",
            "display": "alliance.fhir.core 0.1.0"} in profile["meta"]["tag"]
    tagged = client.get("/StructureDefinition", params={"_tag": TAG, "_count": "0"}).json()
    assert tagged["total"] == len(PACKAGE.of_type("StructureDefinition"))
    lookup = client.get("/CodeSystem/$lookup", params={
        "system": "http://alliance-fhir.org/fhir/CodeSystem/institution-type", "code": "A100"})
    assert lookup.status_code == 200
    assert client.get("/SearchParameter", params={"_tag": TAG}).json()["total"] == len(
        PACKAGE.of_type("SearchParameter"))


def test_the_package_is_written_once(settings):
    with Client(build_app(settings)):
        pass
    with Client(build_app(settings)) as client:
        history = client.get("/_history", params={"_count": "1000"}).json()
    assert history["total"] == PACKAGE_SIZE  # the second start wrote nothing


def test_a_changed_package_is_upgraded(settings, tmp_path):
    with Client(build_app(settings)):
        pass
    folder = tmp_path / "profiles"
    shutil.copytree(packaged_folder("profiles"), folder)
    path = folder / "StructureDefinition-AlliancePatient.json"
    definition = orjson.loads(path.read_bytes())
    definition["description"] = "A newer version of the profile"
    path.write_bytes(orjson.dumps(definition))
    with Client(build_app(replace(settings, profiles_dir=str(folder)))) as client:
        stored = client.get(f"/StructureDefinition/{definition['id']}").json()
        assert stored["meta"]["versionId"] == "2"
        assert stored["description"] == "A newer version of the profile"
        history = client.get("/_history", params={"_count": "1000"}).json()
        assert history["total"] == PACKAGE_SIZE + 1  # only what changed
