"""End to end against a real server process: the demo start, metrics across workers, and
kill -9 during writes."""

from __future__ import annotations

import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from server_process import ServerProcess


def test_serve_demo_answers_over_http(tmp_path):
    server = ServerProcess(tmp_path / "demo.db", "--demo")
    try:
        patient = httpx.get(f"{server.base}/Patient/zhang-san").json()
        assert patient["name"][0]["text"] == "张三"
        referrals = httpx.get(f"{server.base}/ServiceRequest").json()
        assert referrals["total"] == 3
        plain = httpx.post(f"{server.base}/Patient", json={"resourceType": "Patient"})
        assert plain.status_code == 422  # the demo requires the alliance profiles
        created = httpx.post(f"{server.base}/Patient", json={
            "resourceType": "Patient", "name": [{"text": "王五"}], "gender": "male",
            "meta": {"profile": [
                "http://alliance-fhir.org/fhir/StructureDefinition/AlliancePatient"]}})
        assert created.status_code == 201, created.text
        assert created.headers["location"].startswith(server.base + "/Patient/")
    finally:
        server.stop()


def test_metrics_add_up_every_worker(tmp_path):
    server = ServerProcess(tmp_path / "two.db", "--workers", "2")
    try:
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{server.base}/Patient/nobody").status_code == 404
        time.sleep(1.5)  # each worker hands its tallies on at most a second after a request
        for _ in range(4):  # whichever worker answers counts all of them
            text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
            reads = [s.value for family in text_string_to_metric_families(text)
                     for s in family.samples if s.name == "fhir_requests_total"
                     and s.labels == {"interaction": "read", "type": "Patient",
                                      "status": "404"}]
            assert reads == [40]
    finally:
        server.stop()


def _writer(base: str, worker: int, stop: threading.Event, acked: list, txs: list) -> None:
    with httpx.Client(timeout=10) as http:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 3:
                    rid = f"w{worker}-{n}"
                    response = http.put(f"{base}/Patient/{rid}",
                                        json={"resourceType": "Patient", "id": rid})
                    if response.status_code == 201:
                        acked.append(rid)
                else:
                    ids = [f"t{worker}-{n}-{k}" for k in range(5)]
                    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                        {"resource": {"resourceType": "Patient", "id": i},
                         "request": {"method": "PUT", "url": f"Patient/{i}"}} for i in ids]}
                    txs.append(ids)
                    if http.post(base, json=bundle).status_code == 200:
                        acked.extend(ids)
            except httpx.TransportError:
                return


def test_acknowledged_writes_survive_kill_9(tmp_path):
    db = tmp_path / "crash.db"
    server = ServerProcess(db)
    stop = threading.Event()
    acked: list[str] = []
    txs: list[list[str]] = []
    threads = [threading.Thread(target=_writer, args=(server.base, w, stop, acked, txs))
               for w in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.kill()  # while writes are in flight
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acked) > 50
    restarted = ServerProcess(db)
    try:
        with httpx.Client(timeout=10) as http:
            for rid in acked:
                assert http.get(f"{restarted.base}/Patient/{rid}").status_code == 200, rid
            for ids in txs:  # each transaction is wholly there or wholly absent
                found = {http.get(f"{restarted.base}/Patient/{i}").status_code for i in ids}
                assert found in ({200}, {404}), ids
    finally:
        restarted.stop()
