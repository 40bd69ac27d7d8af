"""The event loop never stalls: a worker busy with a large transaction still answers reads
(the transaction is prepared in slices, its body parsed in a thread), and gives the
transaction's memory back afterwards."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
from server_process import ServerProcess


def _transaction(entries: int) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "血红蛋白"}, "subject": {"reference": "Patient/p1"},
                      "valueQuantity": {"value": n, "system": "http://unitsofmeasure.org",
                                        "code": "g/L"},
                      "note": [{"text": "正常范围内，建议随访。" * 40}]},
         "request": {"method": "POST", "url": "Observation"}} for n in range(entries)]})


def test_reads_are_answered_while_a_large_transaction_is_prepared(tmp_path):
    server = ServerProcess(tmp_path / "loop.db")
    try:
        httpx.put(f"{server.base}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        body = _transaction(2500)  # ~4 MB
        took: list[float] = []

        def post() -> None:
            started = time.perf_counter()
            response = httpx.post(server.base, content=body, timeout=120,
                                  headers={"content-type": "application/fhir+json"})
            took.append(time.perf_counter() - started)
            assert response.status_code == 200

        sender = threading.Thread(target=post)
        waits = []
        with httpx.Client(timeout=120) as http:
            http.get(f"{server.base}/Patient/p1")
            sender.start()
            while sender.is_alive():
                started = time.perf_counter()
                assert http.get(f"{server.base}/Patient/p1").status_code == 200
                waits.append(time.perf_counter() - started)
        sender.join()
        assert len(waits) > 10
        assert max(waits) < took[0] / 2  # no read waited for the bulk of the transaction
    finally:
        server.stop()
