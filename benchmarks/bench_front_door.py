"""Figures of the front-door issue: the cost of metrics and request logging, Patient
$everything, start-up time and idle memory with all 145 types, Synthea ingest.

Run ``benchmarks/setup.sh`` once, then ``python3 benchmarks/bench_front_door.py``. Servers
and load generators (wrk, httpx) share this machine and use loopback only; every run is
bounded. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import ingest, start, stop, wait_for, wrk
from server_process import free_port

HERE = Path(__file__).resolve().parent
SYNTHEA = [HERE.parent.parent / "shared" / "fhir-r4" / "synthea",
           HERE.parent / "tests" / "data" / "synthea"]
SEARCHES = ["Patient?gender=female", "Observation?code=http://loinc.org|2345-7",
            "Observation?subject=Patient/p0&_count=10", "Patient?name=%E7%8E%8B"]  # 王


def serve(db: Path, port: int, workers: int, observe: bool) -> object:
    """A server; any extension allowed (Synthea's bundles carry US Core's)."""
    flag = "true" if observe else "false"
    process = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                     "--storage", f"sqlite:///{db}", "--workers", str(workers)],
                    {"FHIR_METRICS": flag, "FHIR_ACCESS_LOG": flag,
                     "FHIR_ALLOW_ANY_EXTENSION": "true"})
    wait_for(f"http://127.0.0.1:{port}/health/ready", settle=1.0 if workers > 1 else 0.0)
    return process


def seed(base: str, observations: int) -> None:
    """Patients and one patient with ``observations`` lab results."""
    with httpx.Client(timeout=60) as http:
        entries = [{"resource": {"resourceType": "Patient", "id": f"p{i}",
                                 "gender": "female" if i % 2 else "male",
                                 "name": [{"text": "王" + "一二三四五"[i % 5]}]},
                    "request": {"method": "PUT", "url": f"Patient/p{i}"}} for i in range(100)]
        entries += [{"resource": {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "subject": {"reference": "Patient/p0"},
            "performer": [{"reference": f"Patient/p{n % 7}"}],
            "effectiveDateTime": f"2026-{1 + n % 12:02d}-01T08:00:00+08:00",
            "valueQuantity": {"value": n % 9, "unit": "mmol/L"}},
            "request": {"method": "POST", "url": "Observation"}} for n in range(observations)]
        for start_at in range(0, len(entries), 500):
            response = http.post(base, json={"resourceType": "Bundle", "type": "transaction",
                                             "entry": entries[start_at:start_at + 500]})
            response.raise_for_status()


def observed_ratio(db: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """read-by-id and search req/s with metrics + logging on and off, alternating runs."""
    rows = []
    for label, paths in (("read by id", ["Patient/p1"]), ("search mix", SEARCHES)):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for observe in (True, False):
                port = free_port()
                process = serve(db, port, args.workers, observe)
                try:
                    rates[observe].append(statistics.mean(
                        wrk(f"http://127.0.0.1:{port}/fhir/{p}", args.seconds, 32)
                        for p in paths))
                finally:
                    stop(process)  # type: ignore[arg-type]
        on, off = max(rates[True]), max(rates[False])
        rows.append((f"{label}, req/s, metrics + request log on / off",
                     f"{on:,.0f} / {off:,.0f} = {on / off:.2f}× "
                     f"(runs on {', '.join(f'{r:,.0f}' for r in rates[True])}; "
                     f"off {', '.join(f'{r:,.0f}' for r in rates[False])})"))
    return rows


def in_process_ratio(db: Path, count: int = 20_000) -> list[tuple[str, str]]:
    """The same read and searches through the ASGI app in this process (no HTTP, no load
    generator sharing the cores): requests/s with metrics + request log on and off, in
    alternating rounds; steadier than wrk on a shared 2-core box, and stricter (HTTP
    parsing, which both sides pay, is left out)."""
    from fhir_server.app import build_app
    from fhir_server.config import Settings

    logging.getLogger("fhir_server.access").setLevel(logging.INFO)

    async def rate(observe: bool, path: str, n: int) -> float:
        app = build_app(Settings(storage=f"sqlite:///{db}", metrics=observe,
                                 access_log=observe))
        if observe:
            app.observer.lines.stream = io.BytesIO()  # type: ignore[union-attr]
        await app.startup()  # type: ignore[misc]
        url, _, query = path.partition("?")
        scope = {"type": "http", "method": "GET", "path": f"/fhir/{url}",
                 "query_string": query.encode(), "headers": [(b"host", b"bench")],
                 "scheme": "http"}

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            pass

        started = time.perf_counter()
        for _ in range(n):
            await app(scope, receive, send)
        elapsed = time.perf_counter() - started
        await app.shutdown()  # type: ignore[misc]
        return n / elapsed

    rows = []
    for label, paths, n in (("read by id", ["Patient/p1"], count),
                            ("search mix", SEARCHES, count // 10)):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(3):
            for observe in (True, False):
                rates[observe].append(statistics.mean(
                    asyncio.run(rate(observe, p, n)) for p in paths))
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        rows.append((f"{label}, in-process req/s (median of 3), metrics + request log on / off",
                     f"{on:,.0f} / {off:,.0f} = {on / off:.2f}×"))
    return rows


def everything(db: Path) -> list[tuple[str, str]]:
    port = free_port()
    process = serve(db, port, 1, True)
    try:
        url = f"http://127.0.0.1:{port}/fhir/Patient/p0/$everything"
        with httpx.Client(timeout=60) as http:
            whole, paged = [], []
            for _ in range(30):
                started = time.perf_counter()
                bundle = http.get(url, params={"_count": "1000"}).json()
                whole.append(time.perf_counter() - started)
                started, page = time.perf_counter(), http.get(url).json()
                while nxt := [x["url"] for x in page["link"] if x["relation"] == "next"]:
                    page = http.get(nxt[0]).json()
                paged.append(time.perf_counter() - started)
        matches = sum(e["search"]["mode"] == "match" for e in bundle["entry"])
        return [(f"$everything, {matches} resources in one page of 1,000 (p50 / p95)",
                 f"{_ms(whole, 50)} / {_ms(whole, 95)} ms"),
                ("$everything, the same in pages of 20 followed to the end (p50 / p95)",
                 f"{_ms(paged, 50)} / {_ms(paged, 95)} ms")]
    finally:
        stop(process)  # type: ignore[arg-type]


def _ms(samples: list[float], pct: int) -> str:
    ordered = sorted(samples)
    return f"{ordered[min(len(ordered) - 1, len(ordered) * pct // 100)] * 1000:.1f}"


def start_up(work: Path) -> list[tuple[str, str]]:
    """Seconds from process start to /health/ready on a fresh database, and idle RSS."""
    times, rss = [], []
    for n in range(3):
        port = free_port()
        started = time.perf_counter()
        process = serve(work / f"fresh{n}.db", port, 1, True)
        times.append(time.perf_counter() - started)
        time.sleep(1)
        status = Path(f"/proc/{process.pid}/status").read_text()  # type: ignore[attr-defined]
        rss.append(int(next(x for x in status.splitlines() if x.startswith("VmRSS"))
                       .split()[1]) / 1024)
        stop(process)  # type: ignore[arg-type]
    return [("start-up to ready, fresh database, 145 types (3 runs)",
             ", ".join(f"{t:.2f} s" for t in times)),
            ("idle RSS after start-up, one worker", ", ".join(f"{r:.0f} MB" for r in rss))]


def synthea_ingest(work: Path) -> list[tuple[str, str]]:
    folder = next(f for f in SYNTHEA if f.is_dir())
    bundles = [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
    port = free_port()
    process = serve(work / "synthea.db", port, 2, True)
    try:
        count, seconds = asyncio.run(ingest(f"http://127.0.0.1:{port}/fhir", bundles, 4))
    finally:
        stop(process)  # type: ignore[arg-type]
    return [(f"Synthea transaction ingest ({len(bundles)} unmodified bundles from "
             f"{folder.parent.name}/{folder.name}, 4 clients, 2 workers)",
             f"{count / seconds:,.0f} resources/s ({count} in {seconds:.2f} s)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per run")
    parser.add_argument("--rounds", type=int, default=2, help="on/off pairs per figure")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--observations", type=int, default=999)
    parser.add_argument("--only", choices=("observe", "everything", "start-up", "synthea"),
                        help="measure one group of figures")
    args = parser.parse_args()
    wanted = {args.only} if args.only else {"observe", "everything", "start-up", "synthea"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "bench.db"
        port = free_port()
        process = serve(db, port, 1, False)
        try:
            seed(f"http://127.0.0.1:{port}/fhir", args.observations)
        finally:
            stop(process)  # type: ignore[arg-type]
        rows = in_process_ratio(db) + observed_ratio(db, args) if "observe" in wanted else []
        rows += everything(db) if "everything" in wanted else []
        rows += start_up(work) if "start-up" in wanted else []
        rows += synthea_ingest(work) if "synthea" in wanted else []
    print("| figure | measured |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
