"""End to end against a real server process: the demo start, and kill -9 during writes."""

from __future__ import annotations

import threading
import time

import httpx
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
