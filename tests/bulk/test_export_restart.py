"""A server killed (SIGKILL) in the middle of an export: the next one resumes the job
from its last checkpoint, and the files hold every resource once."""

from __future__ import annotations

import time

import httpx
import orjson
from server_process import ServerProcess

ASYNC = {"prefer": "respond-async"}
TYPES = "Patient,Basic,Organization,StructureDefinition,CodeSystem,ValueSet"
BASICS = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Basic", "code": {"text": f"item {n}"}},
     "request": {"method": "POST", "url": "Basic"}} for n in range(5000)]}


def test_a_killed_server_resumes_its_export(tmp_path):
    db = tmp_path / "killed.db"
    slow = {"FHIR_EXPORT_BATCH": "1"}  # a step per resource: the kill lands mid-way
    first = ServerProcess(db, "--demo", env=slow)
    try:
        assert httpx.post(first.base, json=BASICS, timeout=60).status_code == 200
        status = httpx.get(f"{first.base}/$export?_type={TYPES}", headers=ASYNC,
                           timeout=10).headers["content-location"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = httpx.get(status, timeout=10)
            assert answer.status_code == 202, answer.text
            if int(answer.headers["x-progress"].split()[0]) > 500:
                break
            time.sleep(0.05)
    finally:
        first.kill()
    second = ServerProcess(db, env=slow)
    try:
        status = status.replace(first.base, second.base)
        deadline = time.monotonic() + 120
        while (answer := httpx.get(status, timeout=10)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        for output in answer.json()["output"]:
            url = output["url"].replace(first.base, second.base)
            rows = httpx.get(url, timeout=30).content.splitlines()
            ids = [orjson.loads(r)["id"] for r in rows]
            assert len(ids) == len(set(ids)) == output["count"]
            total = httpx.get(f"{second.base}/{output['type']}?_summary=count",
                              timeout=10).json()["total"]
            assert sum(o["count"] for o in answer.json()["output"]
                       if o["type"] == output["type"]) == total
    finally:
        second.stop()
