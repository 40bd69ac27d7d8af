"""The alliance package in profiles/: manifest, index, and sound extension snapshots."""

from __future__ import annotations

import asyncio

import orjson
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder, packaged_folder
from fhir_server.validation.check import Checks, check_resource
from fhir_server.validation.structure import StructureValidator

PROFILES = packaged_folder("profiles")


def test_package_manifest_and_index_list_every_resource():
    package = orjson.loads((PROFILES / "package.json").read_bytes())
    assert package["name"] == "alliance.fhir.core" and package["fhirVersions"] == ["4.0.1"]
    assert package["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    indexed = {f["filename"] for f in orjson.loads((PROFILES / ".index.json").read_bytes())
               ["files"]}
    assert indexed == {p.name for p in PROFILES.glob("*.json")
                       if p.name not in ("package.json", ".index.json")}


def test_extensions_are_valid_with_snapshots_covering_their_differentials():
    validator = StructureValidator()
    definitions = [orjson.loads(p.read_bytes())
                   for p in sorted(PROFILES.glob("StructureDefinition-*.json"))]
    assert len(definitions) >= 17
    for definition in definitions:
        assert check_resource(Checks(validator), definition) == [], definition["id"]
        snapshot = [e["id"] for e in definition["snapshot"]["element"]]
        assert len(snapshot) == len(set(snapshot)), definition["id"]
        assert {e["id"] for e in definition["differential"]["element"]} <= set(snapshot)
        if definition["type"] == "Extension":
            url = next(e for e in definition["snapshot"]["element"]
                       if e["id"] == "Extension.url")
            assert url["fixedUri"] == definition["url"]
        else:
            assert definition["kind"] == "resource" and definition["derivation"] == "constraint"
            assert snapshot[0] == definition["type"]


def test_demo_serves_the_package(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'demo.db'}")
    summary = asyncio.run(load_paths(settings, [demo_folder()]))
    assert summary.failed == 0 and summary.skipped == 0
    with Client(build_app(settings)) as client:
        url = "http://alliance-fhir.org/fhir/StructureDefinition/result-recognition"
        found = client.get("/StructureDefinition", params={"url": url}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == ["result-recognition"]
