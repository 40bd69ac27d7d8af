"""Conditional writes racing on a real 2-worker server: one condition, one resource.

Interface engines re-send with ``If-None-Exist`` or ``PUT Patient?identifier=…`` from
several threads; each trial below starts 10 clients at once (a barrier) on their own
connections, which the kernel spreads over both worker processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest
from server_process import ServerProcess

MRN = "urn:oid:2.16.840.1.113883.4.1.99"  # not a unique-identifier system: only conditions
CLIENTS, TRIALS = 10, 6


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ServerProcess(tmp_path_factory.mktemp("race") / "race.db", "--workers", "2")
    try:
        yield server.base
    finally:
        server.stop()


def patient(value: str) -> dict:
    return {"resourceType": "Patient", "gender": "male",
            "identifier": [{"system": MRN, "value": value}]}


def race(base: str, send: Callable[[httpx.Client, int], httpx.Response]) -> list[int]:
    """``send`` from CLIENTS threads released together; their statuses."""
    barrier = threading.Barrier(CLIENTS)

    def one(n: int) -> int:
        with httpx.Client(timeout=30) as http:
            http.get(f"{base}/metadata")  # connected before the start
            barrier.wait()
            return send(http, n).status_code

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def count(base: str, value: str) -> int:
    return httpx.get(f"{base}/Patient", params={"identifier": f"{MRN}|{value}",
                                                "_summary": "count"}).json()["total"]


def test_conditional_create(base):
    for trial in range(TRIALS):
        value = f"create-{trial}"
        statuses = race(base, lambda http, n, v=value: http.post(
            f"{base}/Patient", json=patient(v), headers={"If-None-Exist": f"identifier={MRN}|{v}"}))
        assert sorted(statuses) == [200] * (CLIENTS - 1) + [201]
        assert count(base, value) == 1


def test_conditional_update(base):
    for trial in range(TRIALS):
        value = f"update-{trial}"
        statuses = race(base, lambda http, n, v=value: http.put(
            f"{base}/Patient", params={"identifier": f"{MRN}|{v}"}, json=patient(v)))
        assert sorted(statuses) == [200] * (CLIENTS - 1) + [201]
        assert count(base, value) == 1


def test_if_none_exist_in_transactions(base):
    for trial in range(TRIALS):
        value = f"bundle-{trial}"
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": "urn:uuid:5f0b6a4e-0000-4000-8000-000000000001",
            "resource": patient(value),
            "request": {"method": "POST", "url": "Patient",
                        "ifNoneExist": f"identifier={MRN}|{value}"}}, {
            "resource": {"resourceType": "Observation", "status": "final",
                         "code": {"text": "血红蛋白"},
                         "subject": {"reference": "urn:uuid:5f0b6a4e-0000-4000-8000-000000000001"}},
            "request": {"method": "POST", "url": "Observation"}}]}
        statuses = race(base, lambda http, n, b=bundle: http.post(base, json=b))
        assert statuses == [200] * CLIENTS
        assert count(base, value) == 1
        observations = httpx.get(f"{base}/Observation", params={
            "subject:Patient.identifier": f"{MRN}|{value}", "_summary": "count"}).json()
        assert observations["total"] == CLIENTS  # each filed under the one patient


def test_equivalent_spellings_of_one_condition(base):
    for trial in range(TRIALS):
        value = f"spelling-{trial}"
        spellings = [f"identifier={MRN}|{value}",
                     f"identifier={quote(MRN, safe='')}%7C{value}",
                     f"gender=male&identifier={MRN}|{value}",
                     f"identifier={MRN}|{value}&gender=male",
                     f"identifier={value}"]
        statuses = race(base, lambda http, n, v=value, s=spellings: http.post(
            f"{base}/Patient", json=patient(v), headers={"If-None-Exist": s[n % len(s)]}))
        assert sorted(statuses) == [200] * (CLIENTS - 1) + [201]
        assert count(base, value) == 1
