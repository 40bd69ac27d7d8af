"""The alliance terminology: valid R4, loadable, and usable by the search modifiers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder, packaged_folder
from fhir_server.validation.check import Checks, check_resource
from fhir_server.validation.structure import StructureValidator


def _codes(concepts: list[dict]) -> list[str]:
    return [c["code"] for c in concepts] + [code for c in concepts
                                            for code in _codes(c.get("concept", []))]


def test_every_file_is_valid_and_every_concept_bilingual():
    validator = StructureValidator()
    files = sorted(packaged_folder("terminology").glob("*.json"))
    assert len(files) >= 29
    for path in files:
        resource = orjson.loads(path.read_bytes())
        assert check_resource(Checks(validator), resource) == [], path.name
        if resource["resourceType"] == "CodeSystem":
            codes = _codes(resource["concept"])
            assert len(codes) == len(set(codes)), path.name
            ethnic = resource["id"] == "ethnicity"
            assert not ethnic or codes == [f"{n:02d}" for n in range(1, 57)]


def test_demo_alliance_with_terminology(tmp_path: Path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'demo.db'}")
    summary = asyncio.run(load_paths(settings, [demo_folder()]))
    assert summary.failed == 0
    with Client(build_app(settings)) as client:
        orgs = client.get("/Organization?type:in=http://alliance-fhir.org/fhir/ValueSet/"
                          "institution-type&_count=50").json()
        assert {"lead", "tcm", "gulu"} <= {e["resource"]["id"] for e in orgs["entry"]}
        tcm = client.get("/Organization?type=http://alliance-fhir.org/fhir/CodeSystem/"
                         "institution-type|A210").json()
        assert [e["resource"]["id"] for e in tcm["entry"]] == ["tcm"]
        divisions = client.get("/CodeSystem?url=http://alliance-fhir.org/fhir/CodeSystem/"
                               "administrative-division").json()
        assert divisions["total"] == 1
