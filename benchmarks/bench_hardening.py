"""Figures of the hardening issue: reads during a 15 MB transaction on one worker, the
worker's memory after it, peak RSS of $reindex, the cost of atomic conditional create, and
an optional soak with RSS sampled every minute.

Run ``benchmarks/setup.sh`` once, then ``python3 benchmarks/bench_hardening.py`` (add
``--only stall|reindex|conditional|soak``; ``--reindex-size 1000000`` for the 1 M figure,
``--soak-minutes 30`` for the soak). Servers and clients share this machine (loopback).
Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import start, stop, wait_for, wrk
from server_process import free_port

JSON = {"content-type": "application/fhir+json"}
IDENTIFIER_LUA = """
local n = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local value = prefix .. "-" .. n
  local body = '{"resourceType":"Patient","gender":"male","identifier":[{"system":' ..
    '"urn:oid:2.16.840.1.113883.4.1.99","value":"' .. value .. '"}]}'
  local headers = {["Content-Type"] = "application/fhir+json"}
  if %s then headers["If-None-Exist"] = "identifier=urn:oid:2.16.840.1.113883.4.1.99|" .. value end
  return wrk.format("POST", nil, headers, body)
end
"""


def serve(db: Path, port: int, *extra: str) -> object:
    process = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                     "--storage", f"sqlite:///{db}", *extra],
                    {"FHIR_ACCESS_LOG": "false"})
    wait_for(f"http://127.0.0.1:{port}/health/ready")
    return process


def memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak) and RssAnon of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            found[key] = int(value.split()[0]) // 1024
    return found


class PeakAnon:
    """Samples a process's anonymous RSS every 50 ms (VmHWM also counts the database pages
    SQLite maps into memory, which the kernel may drop at any time)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, memory(self.pid)["RssAnon"])

    def __enter__(self) -> PeakAnon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


def observation(n: int) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7",
                                 "display": "Hemoglobin [Mass/volume] in Blood"}],
                     "text": "血红蛋白"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T08:00:00+08:00",
            "valueQuantity": {"value": 120 + n % 40, "unit": "g/L",
                              "system": "http://unitsofmeasure.org", "code": "g/L"},
            "note": [{"text": "复查 " + "正常范围内，建议随访。" * 60}]}


def big_transaction(megabytes: float) -> bytes:
    entries, size = [], 0
    while size < megabytes * 1024 * 1024:
        entry = {"resource": observation(len(entries)),
                 "request": {"method": "POST", "url": "Observation"}}
        size += len(orjson.dumps(entry))
        entries.append(entry)
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _percentile(samples: list[float], pct: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def stall(work: Path) -> list[tuple[str, str]]:
    """Reads of one worker answered while it takes a 15 MB transaction."""
    port = free_port()
    process = serve(work / "stall.db", port)
    base = f"http://127.0.0.1:{port}/fhir"
    body = big_transaction(15)
    try:
        httpx.put(f"{base}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        latencies: list[tuple[float, float]] = []
        done = threading.Event()

        def reader() -> None:
            with httpx.Client(timeout=60) as http:
                while not done.is_set():
                    started = time.perf_counter()
                    http.get(f"{base}/Patient/p1").raise_for_status()
                    latencies.append((started, time.perf_counter() - started))
                    time.sleep(0.002)

        thread = threading.Thread(target=reader)
        thread.start()
        time.sleep(1.0)
        before = memory(process.pid)  # type: ignore[attr-defined]
        reset_peak(process.pid)  # type: ignore[attr-defined]
        began = time.perf_counter()
        response = httpx.post(base, content=body, headers=JSON, timeout=300)
        ended = time.perf_counter()
        response.raise_for_status()
        time.sleep(1.0)
        done.set()
        thread.join()
        after = memory(process.pid)  # type: ignore[attr-defined]
    finally:
        stop(process)  # type: ignore[arg-type]
    during = [lat * 1000 for at, lat in latencies if began <= at <= ended]
    idle = [lat * 1000 for at, lat in latencies if at < began]
    entries = len(orjson.loads(body)["entry"])
    return [
        (f"the transaction ({len(body) / 1024 / 1024:.1f} MB, {entries:,} Observations), one "
         "worker", f"{ended - began:.2f} s"),
        ("read by id on the same worker during it: reads, p50 / p99 / max (ms)",
         f"{len(during)}, {statistics.median(during):.1f} / {_percentile(during, 99):.1f} / "
         f"{max(during):.1f} (idle: p50 {statistics.median(idle):.1f}, "
         f"p99 {_percentile(idle, 99):.1f})"),
        ("worker RSS before / peak during / 1 s after (MB)",
         f"{before['VmRSS']} / {after['VmHWM']} / {after['VmRSS']} "
         f"(anonymous after: {after['RssAnon']})"),
    ]


async def _load(base: str, count: int, concurrency: int = 4) -> None:
    per_bundle = 500
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start_at in range(0, count, per_bundle):
        queue.put_nowait(start_at)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            first = queue.get_nowait()
            entries = [{"resource": _without_note(observation(n)),
                        "request": {"method": "POST", "url": "Observation"}}
                       for n in range(first, min(count, first + per_bundle))]
            response = await http.post(base, content=orjson.dumps({
                "resourceType": "Bundle", "type": "transaction", "entry": entries}),
                headers=JSON)
            response.raise_for_status()

    async with httpx.AsyncClient(timeout=300) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


def _without_note(resource: dict) -> dict:
    resource.pop("note")
    return resource


def reindex(work: Path, size: int) -> list[tuple[str, str]]:
    port = free_port()
    db = work / f"reindex-{size}.db"
    process = serve(db, port)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        httpx.put(f"{base}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        asyncio.run(_load(base, size))
        before = memory(process.pid)  # type: ignore[attr-defined]
        reset_peak(process.pid)  # type: ignore[attr-defined]
        began = time.perf_counter()
        with PeakAnon(process.pid) as anon:  # type: ignore[attr-defined]
            httpx.post(f"{base}/$reindex", timeout=3600).raise_for_status()
        seconds = time.perf_counter() - began
        after = memory(process.pid)  # type: ignore[attr-defined]
        size_mb = sum(f.stat().st_size for f in db.parent.glob(db.name + "*")) // 2**20
    finally:
        stop(process)  # type: ignore[arg-type]
    return [(f"$reindex of {size:,} Observations ({size_mb:,} MB database): time; RSS "
             "before / peak / after (MB); anonymous before / peak / after",
             f"{seconds:.1f} s; {before['VmRSS']} / {after['VmHWM']} / {after['VmRSS']}; "
             f"{before['RssAnon']} / {anon.peak} / {after['RssAnon']}")]


def conditional(work: Path, seconds: int) -> list[tuple[str, str]]:
    """Creates per second, plain and with If-None-Exist (a new identifier each: both
    create), 2 workers, wrk -c16."""
    rates = {}
    for label, flag in (("plain", "false"), ("If-None-Exist", "true")):
        port = free_port()
        process = serve(work / f"cond-{flag}.db", port, "--workers", "2")
        script = work / f"cond-{flag}.lua"
        script.write_text(IDENTIFIER_LUA % flag)
        try:
            time.sleep(2)
            rates[label] = wrk(f"http://127.0.0.1:{port}/fhir/Patient", seconds, 16, script)
        finally:
            stop(process)  # type: ignore[arg-type]
    return [("create req/s, plain / conditional (If-None-Exist, atomic), 2 workers, wrk -c16",
             f"{rates['plain']:,.0f} / {rates['If-None-Exist']:,.0f} = "
             f"{rates['If-None-Exist'] / rates['plain']:.2f}×")]


async def _mixed(base: str, stop_at: float, clients: int = 8) -> int:
    rng = random.Random(3)
    done = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            kind = rng.random()
            if kind < 0.5:
                await http.get(f"{base}/Patient/p{rng.randrange(200)}")
            elif kind < 0.8:
                await http.get(f"{base}/Observation", params={"subject": "Patient/p1",
                                                              "_count": "20"})
            elif kind < 0.9:
                rid = f"p{rng.randrange(200)}"
                await http.put(f"{base}/Patient/{rid}", json={
                    "resourceType": "Patient", "id": rid,
                    "gender": rng.choice(["male", "female"])})
            else:
                await http.post(f"{base}/Observation", content=orjson.dumps(
                    observation(rng.randrange(1000))), headers=JSON)
            done += 1

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return done


def soak(work: Path, minutes: int) -> list[tuple[str, str]]:
    port = free_port()
    process = serve(work / "soak.db", port)
    base = f"http://127.0.0.1:{port}/fhir"
    samples = []
    try:
        for n in range(200):
            httpx.put(f"{base}/Patient/p{n}", json={"resourceType": "Patient", "id": f"p{n}"})
        total = 0
        for _ in range(minutes):
            total += asyncio.run(_mixed(base, time.monotonic() + 60))
            samples.append(memory(process.pid))  # type: ignore[attr-defined]
    finally:
        stop(process)  # type: ignore[arg-type]
    rows = []
    for key, label in (("VmRSS", "RSS"), ("RssAnon", "anonymous RSS (without mapped "
                                                      "database pages)")):
        series = [sample[key] for sample in samples]
        warm = series[len(series) // 5:] or series
        rows.append((f"soak, {minutes} min of mixed reads, searches and writes (8 clients), "
                     f"{label} each minute (MB)", f"{', '.join(map(str, series))}; after "
                     f"warm-up {min(warm)}–{max(warm)} ({(max(warm) / min(warm) - 1) * 100:.0f} "
                     f"%); {total:,} requests"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("stall", "reindex", "conditional", "soak"))
    parser.add_argument("--reindex-size", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--soak-minutes", type=int, default=0)
    args = parser.parse_args()
    wanted = {args.only} if args.only else {"stall", "reindex", "conditional", "soak"}
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows += stall(work) if "stall" in wanted else []
        rows += reindex(work, args.reindex_size) if "reindex" in wanted else []
        rows += conditional(work, args.seconds) if "conditional" in wanted else []
        rows += soak(work, args.soak_minutes) if "soak" in wanted and args.soak_minutes else []
    print("| figure | measured |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
