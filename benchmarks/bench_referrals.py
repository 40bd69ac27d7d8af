"""Issue 17's figures: ``$referral-kpis`` for a month of a 50-member alliance, the latency
from a commit to its rest-hook delivery, and the write path with 100 active Subscriptions
as a ratio to none.

``python3 benchmarks/bench_referrals.py [--referrals 100000] [--only kpis|latency|writes]``

- kpis: an alliance of 1 lead hospital (with 4 departments), 9 secondary hospitals and 40
  grassroots centres, 5 staff each, 2,000 patients, and ``--referrals`` referrals
  (ServiceRequest + Task, in every state) authored in November 2026, loaded with
  ``alliance-fhir load`` (validated, rules enforced); then ``$referral-kpis?period=2026-11``
  in process (the computation, no HTTP) and over HTTP, ``--repeat`` times each.
- latency: a real server and a real receiver on loopback; Tasks written one at a time, each
  matching a rest-hook Subscription; from sending the write to the receiver having it.
- writes: Task creates over HTTP for ``--seconds`` with 8 in flight, without Subscriptions
  and with 100 active ones (each write matching one, delivered to the receiver).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from receiver import running_receiver
from server_process import ServerProcess

from fhir_server.app import build_app, build_service
from fhir_server.config import Settings
from fhir_server.core.referral_kpis import ReferralKpis
from fhir_server.loader import load_paths

BASE = "http://alliance-fhir.org/fhir"
CS = f"{BASE}/CodeSystem"
LEVEL = f"{BASE}/StructureDefinition/hospital-level"
STATES = ("requested", "received", "accepted", "in-progress", "completed", "rejected",
          "cancelled")
FOLLOWS = {"completed": "completed", "rejected": "revoked", "cancelled": "revoked"}


def alliance(folder: Path, referrals: int, seed: int = 7) -> Path:
    """The alliance and a month of referrals, as an NDJSON file."""
    rng = random.Random(seed)
    rows: list[dict] = []

    def organization(id: str, level: str | None, part_of: str | None = None) -> None:
        org: dict = {"resourceType": "Organization", "id": id, "name": id}
        if level:
            org["extension"] = [{"url": LEVEL, "valueCoding": {
                "system": f"{CS}/hospital-level", "code": level}}]
        elif not part_of:
            org["type"] = [{"coding": [{"system": f"{CS}/institution-type", "code": "C220"}]}]
        if part_of:
            org["partOf"] = {"reference": f"Organization/{part_of}"}
        rows.append(org)

    organization("lead", "3")
    departments = [f"lead-d{i}" for i in range(4)]
    for department in departments:
        organization(department, None, "lead")
    secondary = [f"county{i}" for i in range(9)]
    grassroots = [f"town{i}" for i in range(40)]
    for id in secondary:
        organization(id, "2")
    for id in grassroots:
        organization(id, None)
    for member in [*secondary, *grassroots]:
        rows.append({"resourceType": "OrganizationAffiliation", "id": f"m-{member}",
                     "active": True, "organization": {"reference": "Organization/lead"},
                     "participatingOrganization": {"reference": f"Organization/{member}"}})
    staff: dict[str, list[str]] = {}
    for org in [*departments, *secondary, *grassroots]:
        staff[org] = [f"{org}-r{i}" for i in range(5)]
        rows += [{"resourceType": "PractitionerRole", "id": role,
                  "organization": {"reference": f"Organization/{org}"}}
                 for role in staff[org]]
    rows += [{"resourceType": "Patient", "id": f"p{i}"} for i in range(2000)]
    start = time.mktime((2026, 11, 1, 0, 0, 0, 0, 0, -1))
    for n in range(referrals):
        up = rng.random() < 0.6
        low = rng.choice(grassroots if rng.random() < 0.7 else secondary)
        high = rng.choice(departments) if low in grassroots or rng.random() < 0.8 \
            else rng.choice(secondary)
        if low in secondary and high in secondary:
            high = rng.choice(departments)
        sender, receiver = (low, high) if up else (high, low)
        authored = start + rng.random() * 29 * 86400
        state = rng.choice(STATES)
        referral = {
            "resourceType": "ServiceRequest", "id": f"r{n}",
            "status": FOLLOWS.get(state, "active"), "intent": "order",
            "extension": [{"url": f"{BASE}/StructureDefinition/referral-direction",
                           "valueCoding": {"system": f"{CS}/referral-direction",
                                           "code": "up" if up else "down"}}],
            "priority": rng.choice(("routine", "routine", "routine", "stat", "asap")),
            "subject": {"reference": f"Patient/p{n % 2000}"},
            "authoredOn": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.localtime(authored)),
            "requester": {"reference": f"PractitionerRole/{rng.choice(staff[sender])}"},
            "performer": [{"reference": f"Organization/{receiver}"}]}
        task: dict = {"resourceType": "Task", "id": f"t{n}", "status": state,
                      "intent": "order", "focus": {"reference": f"ServiceRequest/r{n}"},
                      "for": {"reference": f"Patient/p{n % 2000}"},
                      "priority": referral["priority"],
                      "owner": {"reference": f"Organization/{receiver}"},
                      "authoredOn": referral["authoredOn"]}
        if state in ("accepted", "in-progress", "completed"):
            accepted = authored + rng.randrange(5, 3000) * 60
            task["extension"] = [{"url": f"{BASE}/StructureDefinition/referral-accepted",
                                  "valueDateTime": time.strftime(
                                      "%Y-%m-%dT%H:%M:%S+08:00", time.localtime(accepted))}]
        if state == "rejected":
            task["statusReason"] = {"coding": [{"system": f"{CS}/referral-rejection-reason",
                                                "code": "no-bed"}]}
        if state == "completed":
            task["output"] = [{"type": {"text": "治疗结果"}, "valueString": "好转"}]
        rows += [referral, task]
    path = folder / "alliance.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return path


def kpis(referrals: int, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-kpis-"))
    settings = Settings(storage=f"sqlite:///{folder / 'kpis.db'}")
    data = alliance(folder, referrals)
    began = time.perf_counter()
    summary = asyncio.run(load_paths(settings, [data]))
    print(f"loaded {summary.loaded} resources ({summary.failed} failed) in "
          f"{time.perf_counter() - began:.0f} s")

    async def computed() -> list[float]:
        service = build_service(settings)
        await service.open()
        try:
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                reports = await ReferralKpis(service).reports("2026-11")
                times.append(time.perf_counter() - began)
            counted = sum(g["measureScore"]["value"] for r in reports for g in r["group"]
                          if g["code"]["coding"][0]["code"] == "up-sent")
            print(f"{len(reports)} members, {counted:.0f} upward referrals counted")
            return times
        finally:
            await service.close()
    times = asyncio.run(computed())
    print(f"$referral-kpis in process: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms")
    # (no green-channel deadlines: the month's stat referrals would all be marked overdue
    # while the figures are measured)
    server = ServerProcess(folder / "kpis.db", env={"FHIR_REFERRAL_SLA": ""})
    try:
        http = []
        for _ in range(repeat):
            began = time.perf_counter()
            httpx.get(f"{server.base}/$referral-kpis", params={"period": "2026-11"},
                      timeout=120).raise_for_status()
            http.append(time.perf_counter() - began)
        print(f"$referral-kpis over HTTP: median {statistics.median(http) * 1000:.0f} ms, "
              f"max {max(http) * 1000:.0f} ms")
    finally:
        server.stop()


def _subscribe(base: str, receiver_url: str, owner: str) -> None:
    httpx.post(f"{base}/Subscription", json={
        "resourceType": "Subscription", "status": "requested", "reason": "bench",
        "criteria": f"Task?owner=Organization/{owner}&status=requested",
        "channel": {"type": "rest-hook", "endpoint": receiver_url}}).raise_for_status()


def _organizations(base: str, count: int) -> None:
    for i in range(count):
        httpx.put(f"{base}/Organization/o{i}", json={
            "resourceType": "Organization", "id": f"o{i}", "name": f"o{i}"}).raise_for_status()


def _task(owner: str) -> dict:
    return {"resourceType": "Task", "status": "requested", "intent": "order",
            "owner": {"reference": f"Organization/{owner}"}}


def latency(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    with running_receiver() as receiver:
        server = ServerProcess(folder / "notify.db")
        try:
            _organizations(server.base, 1)
            _subscribe(server.base, receiver.url, "o0")
            arrivals: list[float] = []
            original = receiver.requests

            class Stamped(list):  # the receiver appends: stamp each arrival
                def append(self, item: object) -> None:
                    arrivals.append(time.monotonic())
                    super().append(item)
            receiver.requests = Stamped(original)
            sent = []
            with httpx.Client() as client:
                for _ in range(count):
                    sent.append(time.monotonic())
                    client.post(f"{server.base}/Task", json=_task("o0")).raise_for_status()
                    while len(arrivals) < len(sent):
                        time.sleep(0.0005)
            waits = sorted((a - s) * 1000 for a, s in zip(arrivals, sent, strict=True))
            print(f"commit -> rest-hook delivery over {count} writes: p50 "
                  f"{statistics.median(waits):.1f} ms, p95 {waits[int(len(waits) * 0.95)]:.1f}"
                  f" ms, max {waits[-1]:.1f} ms (from sending the write)")
        finally:
            server.stop()


def _receive(port: multiprocessing.Value, count: multiprocessing.Value,
             stop: multiprocessing.Event) -> None:
    """A receiver in a process of its own (not competing with the load generator's GIL)."""
    with running_receiver() as receiver:
        port.value = receiver.port
        while not stop.is_set():
            count.value = len(receiver.requests)
            time.sleep(0.05)


@contextlib.contextmanager
def receiver_process() -> Iterator[tuple[str, multiprocessing.Value]]:
    """A loopback receiver in its own process: its URL and its count of requests."""
    port, count = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=_receive, args=(port, count, stop))
    process.start()
    while not port.value:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port.value}/hook", count
    finally:
        stop.set()
        process.join()


def writes(seconds: float, subscriptions: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    with receiver_process() as (url, count):
        return _writes(folder, url, count, seconds, subscriptions)


def _writes(folder: Path, url: str, count: multiprocessing.Value, seconds: float,
            subscriptions: int) -> float:
    """Task creates for ``seconds`` with 8 in flight, each matching one Subscription."""
    server = ServerProcess(folder / "writes.db")
    try:
        _organizations(server.base, 100)
        for i in range(subscriptions):
            _subscribe(server.base, url, f"o{i}")
        done = [0]
        stop = time.monotonic() + seconds

        def writer(offset: int) -> None:
            with httpx.Client() as client:
                n = offset
                while time.monotonic() < stop:
                    client.post(f"{server.base}/Task",
                                json=_task(f"o{n % 100}")).raise_for_status()
                    done[0] += 1
                    n += 8
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = done[0] / seconds
        delivered = count.value
        drained = time.monotonic()
        while subscriptions and count.value < done[0] and time.monotonic() - drained < 300:
            time.sleep(0.1)
        print(f"Task creates with {subscriptions} Subscriptions: {rate:.0f}/s; "
              f"{delivered} of {done[0] if subscriptions else 0} notifications delivered "
              f"during the run, all {count.value} {time.monotonic() - drained:.1f} s "
              "after it")
        return rate
    finally:
        server.stop()


def in_process(seconds: float, subscriptions: int, url: str,
               count: multiprocessing.Value, matching: bool = True) -> float:
    """Task creates through the service in this process (8 in flight, no HTTP in front),
    the server's notifier running in the same event loop; each write matching one
    Subscription, or (``matching`` False) none of them."""
    folder = Path(tempfile.mkdtemp(prefix="bench-inproc-"))
    app = build_app(Settings(storage=f"sqlite:///{folder / 'w.db'}"))

    async def run() -> float:
        await app.startup()
        service = app.router.context.service
        try:
            for i in range(200):
                await service.update("Organization", f"o{i}", {
                    "resourceType": "Organization", "id": f"o{i}", "name": f"o{i}"})
            for i in range(subscriptions):
                await service.create("Subscription", {
                    "resourceType": "Subscription", "status": "requested", "reason": "bench",
                    "criteria": f"Task?owner=Organization/o{i}&status=requested",
                    "channel": {"type": "rest-hook", "endpoint": url}})
            done, stop = 0, time.monotonic() + seconds

            async def writer(offset: int) -> None:
                nonlocal done
                n = offset
                while time.monotonic() < stop:
                    owner = n % 100 + (0 if matching else 100)
                    await service.create("Task", _task(f"o{owner}"))
                    done += 1
                    n += 8
            await asyncio.gather(*(writer(i) for i in range(8)))
            drained = time.monotonic()
            while subscriptions and matching and count.value < done \
                    and time.monotonic() - drained < 120:
                await asyncio.sleep(0.05)
            print(f"in process, {subscriptions} Subscriptions, writes "
                  f"{'each matching one' if matching else 'matching none'}: "
                  f"{done / seconds:.0f} creates/s; every notification delivered "
                  f"{time.monotonic() - drained:.1f} s after")
            return done / seconds
        finally:
            await app.shutdown()
    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=("kpis", "latency", "writes"))
    args = parser.parse_args()
    if args.only in (None, "kpis"):
        kpis(args.referrals, args.repeat)
    if args.only in (None, "latency"):
        latency(args.writes)
    if args.only in (None, "writes"):
        without = writes(args.seconds, 0)
        with_them = writes(args.seconds, 100)
        print(f"over HTTP, 100 Subscriptions / none: {with_them / without:.2f}x")
        with receiver_process() as (url, count):
            without = in_process(args.seconds, 0, url, count)
            with_them = in_process(args.seconds, 100, url, count)
            quiet = in_process(args.seconds, 100, url, count, matching=False)
        print(f"in process, 100 Subscriptions / none: {with_them / without:.2f}x when every "
              f"write notifies, {quiet / without:.2f}x when none does")


if __name__ == "__main__":
    main()
