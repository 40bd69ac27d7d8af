"""Test support for $export: kick off, poll until done, download the files."""

from __future__ import annotations

import time

import orjson
from support import Client

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}


def kick_off(client: Client, url: str, headers: dict | None = None, **kwargs) -> str:
    answer = client.request(kwargs.pop("method", "GET"), url,
                            headers={**ASYNC, **(headers or {})}, **kwargs)
    assert answer.status_code == 202, answer.text
    return answer.headers["content-location"]


def finished(client: Client, status_url: str, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.get(status_url, headers=headers or {})
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code == 202, answer.text
        assert answer.headers["x-progress"]
        time.sleep(0.02)
    raise AssertionError("the export did not finish")


def lines(client: Client, manifest: dict, headers: dict | None = None) -> list[bytes]:
    found = []
    for output in manifest["output"]:
        answer = client.get(output["url"], headers=headers or {})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/fhir+ndjson"
        rows = answer.content.splitlines()
        assert len(rows) == output["count"]
        assert all(orjson.loads(r)["resourceType"] == output["type"] for r in rows)
        found += rows
    return found
