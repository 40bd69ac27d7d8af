"""``alliance-fhir load``: Bundles, NDJSON and folders, with a summary line and exit code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from fhir_server.cli import DEMO_MARK, main
from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder


def write(path: Path, value: object) -> Path:
    path.write_bytes(orjson.dumps(value))
    return path


def test_load_folder_of_bundles_and_ndjson(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "a-collection.json", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Organization", "id": "o1", "name": "古路镇中心卫生院"}},
        {"resource": {"resourceType": "Parameters", "id": "e1"}}]})  # never stored
    (data / "b-patients.ndjson").write_text(
        '{"resourceType": "Patient", "id": "p1", "managingOrganization": '
        '{"reference": "Organization/o1"}}\n\n{"resourceType": "Patient", "id": "p2"}\n')
    write(data / "c-tx.json", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f0e6f8e-4d5c-4b3a-9a1b-000000000001",
         "resource": {"resourceType": "Patient"}, "request": {"method": "POST",
                                                               "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "K"},
                      "subject": {"reference": "urn:uuid:0f0e6f8e-4d5c-4b3a-9a1b-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}}]})
    db = tmp_path / "cli.db"
    code = main(["load", "--quiet", "--storage", f"sqlite:///{db}", str(data)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0
    assert line.startswith("loaded 5 resources from 3 files")
    assert "1 skipped (unsupported type), 0 failed" in line


def test_load_reports_failures_and_exits_non_zero(tmp_path, capsys):
    bad = write(tmp_path / "bad.json", {"resourceType": "Patient", "id": "x", "colour": "red"})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = main(["load", "--quiet", "--storage", f"sqlite:///{tmp_path / 'x.db'}", str(bad),
                 str(broken)])
    out = capsys.readouterr().out
    assert code == 1
    assert "Unknown element 'colour'" in out and "Malformed JSON" in out
    assert "2 failed" in out.strip().splitlines()[-1]


def test_demo_loads_once(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'demo.db'}")
    first = asyncio.run(load_paths(settings, [demo_folder()], unless_present=DEMO_MARK))
    assert first.loaded == 48 and first.failed == 0
    second = asyncio.run(load_paths(settings, [demo_folder()], unless_present=DEMO_MARK))
    assert second.loaded == 0 and "already" in second.note
