"""examples/: the demo alliance is valid; every invalid-* file fails with its recorded error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("invalid-*.json"))
INVALID = [p for p in INVALID if not p.name.endswith(".expected.json")]


def test_the_demo_alliance_loads_whole(client):
    bundle = (EXAMPLES / "demo" / "alliance-demo.json").read_bytes()
    response = client.post("", content=bundle, headers={"content-type": "application/fhir+json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example_fails_with_its_recorded_error(client, path):
    expected = orjson.loads(path.with_name(path.stem + ".expected.json").read_bytes())
    resource = orjson.loads(path.read_bytes())
    response = client.put(f"/{resource['resourceType']}/{resource['id']}",
                          content=path.read_bytes(),
                          headers={"content-type": "application/fhir+json"})
    assert response.status_code == expected["status"], response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == expected["code"]
    assert issue["expression"] == [expected["expression"]]
    assert client.post(f"/{resource['resourceType']}/$validate",
                       content=path.read_bytes()).json()["issue"][0]["severity"] == "error"
