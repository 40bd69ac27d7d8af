"""Search figures of issue 4: a query mix on a growing alliance data set (10 k → 1 M).

``python3 benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--repeat 40]
[--storage sqlite|mongodb]``

With ``--storage mongodb`` the same runs on MongoDB: the server ``FHIR_TEST_MONGODB_URI``
names, else SecantusDB started over a temporary folder (its figures are SecantusDB's, not
mongod's); it also prints the document and index bytes per resource.

Loads the demo alliance, then alliance visit Bundles (``alliance_bundles.py``: a patient,
a condition, a referral and its task, a lab report with 8 observations) in-process with
validation and indexing on, until each size is reached; at each size starts a server
(one worker), times every query of the mix over HTTP (p50 / p95 over ``--repeat`` runs with
values drawn from the data) and measures token-search throughput with wrk. Prints Markdown
tables for benchmarks/RESULTS.md. Only loopback is used; every run is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from alliance_bundles import visit_bundle
from bench_core import start, stop, wait_for, wrk
from mongo_server import database_url, mongo_server
from pymongo import MongoClient
from server_process import free_port

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.core.transaction import TransactionPlanner, parse_entry
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder
from fhir_server.search.plan import TABLES

ORGS = ["Organization/gulu", "Organization/shuangfeng", "Organization/county",
        "Organization/tcm", "Organization/lead"]
ID_CARD = "urn:oid:2.16.156.10011.1.3"
WRK_LUA = """
ids = {%s}
request = function()
  return wrk.format("GET", "/fhir/Patient?identifier=%s|" .. ids[math.random(#ids)])
end
"""


class Sample:
    """Values drawn from the loaded data for the queries."""

    def __init__(self) -> None:
        self.patients: list[tuple[str, str]] = []  # (id, resident id number)
        self.seen = 0

    def offer(self, rng: random.Random, patient_id: str, number: str) -> None:
        self.seen += 1
        if len(self.patients) < 2000:
            self.patients.append((patient_id, number))
        elif rng.random() < 2000 / self.seen:
            self.patients[rng.randrange(2000)] = (patient_id, number)


async def grow(settings: Settings, target: int, have: int, rng: random.Random,
               sample: Sample) -> int:
    """Load visit Bundles until about ``target`` resources are stored."""
    service = build_service(settings)
    await service.open()
    planner = TransactionPlanner(service)
    queue: asyncio.Queue[None] = asyncio.Queue()
    count = (target - have) // 13 + 1
    for _ in range(count):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            bundle = visit_bundle(rng, rng.choice(ORGS), "PractitionerRole/chen-jing-shuangfeng")
            entries = [parse_entry(e, i, "") for i, e in enumerate(bundle["entry"])]
            number = bundle["entry"][0]["resource"]["identifier"][0]["value"]
            outcomes = await planner.commit(entries)
            sample.offer(rng, outcomes[0].stored.id, number)  # type: ignore[union-attr]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    seconds = time.perf_counter() - started
    await service.close()
    print(f"  loaded {count * 13:,} resources in {seconds:.0f} s "
          f"({count * 13 / seconds:,.0f}/s)", flush=True)
    return have + count * 13


def queries(rng: random.Random, sample: Sample,
            since: str) -> dict[str, Callable[[], str]]:
    """The mix, and after it queries outside the mix that once read the whole table."""
    def patient() -> tuple[str, str]:
        return rng.choice(sample.patients)

    def date_range() -> str:
        """From the 10th of a month to the end of that year or the next (start < end)."""
        year = rng.choice((2025, 2026))
        return (f"date=ge{year}-{rng.randint(1, 12):02d}-10"
                f"&date=lt{rng.randint(year, 2026)}-12-31")

    def reversed_range() -> str:
        """A start after the end: no observation can match (the worst case, see RESULTS)."""
        return f"date=ge2026-{rng.randint(1, 12):02d}-10&date=lt2025-12-31"

    return {
        "token: Patient?identifier=": lambda: f"Patient?identifier={ID_CARD}|{patient()[1]}",
        "date range: Observation?date=ge…&date=lt…&code=…": lambda: (
            f"Observation?{date_range()}&code=2345-7"),
        "reversed date range (empty; not in the mix)": lambda: (
            f"Observation?{reversed_range()}&code=2345-7"),
        "string prefix: Patient?name=王": lambda: f"Patient?name={rng.choice('王李张刘陈')}",
        "pinyin: Patient?name-pinyin=wangwei": lambda: (
            f"Patient?name-pinyin={rng.choice(['wangwei', 'lifang', 'zhangjun', 'ljh', 'cx'])}"),
        "reference: Observation?subject=Patient/…": lambda: (
            f"Observation?subject=Patient/{patient()[0]}"),
        "chain 1: Observation?subject:Patient.identifier=": lambda: (
            f"Observation?subject:Patient.identifier={ID_CARD}|{patient()[1]}"),
        "chain 2: DiagnosticReport?result.subject:Patient.identifier=": lambda: (
            f"DiagnosticReport?result.subject:Patient.identifier={ID_CARD}|{patient()[1]}"),
        "_has: Patient?_has:ServiceRequest:subject:priority=stat&birthdate=…": lambda: (
            f"Patient?_has:ServiceRequest:subject:priority=stat"
            f"&birthdate={rng.randint(1940, 2005)}"),
        "_include+_revinclude: ServiceRequest?subject=…": lambda: (
            f"ServiceRequest?subject=Patient/{patient()[0]}&_include=ServiceRequest:subject"
            "&_revinclude=Task:focus"),
        "_total=accurate: Observation?code=2823-3&_total=accurate": lambda: (
            f"Observation?code={rng.choice(['2823-3', '2951-2', '1751-7'])}"
            "&_total=accurate&_count=10"),
        "(not in the mix) _id, 20 ids: Patient?_id=…": lambda: (
            "Patient?_id=" + ",".join(patient()[0] for _ in range(20))),
        "(not in the mix) incremental pull: Observation?_lastUpdated=ge<the last 500>": lambda: (
            f"Observation?_lastUpdated=ge{since}"),
        "(not in the mix) newest first: Observation?code=…&_sort=-_lastUpdated": lambda: (
            f"Observation?code={rng.choice(['2345-7', '2160-0'])}&_sort=-_lastUpdated"),
        "(not in the mix) type only: Patient": lambda: "Patient",
        "(not in the mix) one patient's results: Observation?code=…&subject=…": lambda: (
            f"Observation?code={rng.choice(['2345-7', '2160-0'])}"
            f"&subject=Patient/{patient()[0]}"),
        "(not in the mix) by name: Patient?_sort=name": lambda: (
            f"Patient?_sort={rng.choice(['name', '-name'])}"),
        "(not in the mix) lone quantity: Observation?value-quantity=gt5.5": lambda: (
            f"Observation?value-quantity=gt{rng.choice(['5.5', '4', '7'])}"),
        "(not in the mix) _has alone: Patient?_has:ServiceRequest:subject:priority=stat": (
            lambda: "Patient?_has:ServiceRequest:subject:priority=stat"),
        "(not in the mix) _has, a page of one: …&_count=1": lambda: (
            f"Patient?_has:ServiceRequest:subject:priority=stat"
            f"&birthdate={rng.randint(1940, 2005)}&_count=1"),
    }


def timed(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return elapsed, response


def page_fifty(client: httpx.Client, base: str, rng: random.Random) -> float:
    """Latency of page 50 (or the last, if fewer) of Observation?code=…&_sort=-date;
    the pages before it are fetched untimed."""
    url = f"{base}/Observation?code={rng.choice(['2345-7', '2160-0'])}&_sort=-date&_count=20"
    for _ in range(49):
        links = client.get(url).json()["link"]
        following = [link["url"] for link in links if link["relation"] == "next"]
        if not following:
            break
        url = following[0]
    return timed(client, url)[0]


def measure(base: str, sample: Sample, repeat: int, rng: random.Random,
            interleave: bool) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies per query, and the median number of matches on the page it returns (a
    page of 20 costs more to read and send than a page of 1). Each query runs its rounds
    in a row (warm, as in earlier runs), or with ``interleave`` the queries take turns,
    so each finds the caches as the others left them."""
    results: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    with httpx.Client(timeout=60) as client:
        latest = client.get(f"{base}/Observation?_sort=-_lastUpdated&_count=500").json()
        since = latest["entry"][-1]["resource"]["meta"]["lastUpdated"].replace("+", "%2B")
        mix = queries(rng, sample, since)
        for make in mix.values():
            timed(client, f"{base}/{make()}")  # warm the caches each query uses
        turns = [name for _ in range(repeat) for name in mix] if interleave \
            else [name for name in mix for _ in range(repeat)]
        for name in turns:
            elapsed, response = timed(client, f"{base}/{mix[name]()}")
            results.setdefault(name, []).append(elapsed)
            counts.setdefault(name, []).append(sum(
                e["search"]["mode"] == "match" for e in response.json().get("entry", [])))
        entries = {name: statistics.median(found) for name, found in counts.items()}
        page_runs = max(repeat // 8, 3)
        page_name = "_sort=-date, page 50: Observation?code=…&_sort=-date"
        results[page_name] = [page_fifty(client, base, rng) for _ in range(page_runs)]
        entries[page_name] = 20
    return results, entries


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--interleave", action="store_true",
                        help="the queries take turns instead of each running its rounds")
    parser.add_argument("--storage", choices=("sqlite", "mongodb"), default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    if args.storage == "mongodb":
        with mongo_server() as url:
            run(args, work, Settings(storage=database_url(url)))
    else:
        run(args, work, Settings(storage=f"sqlite:///{work / 'search.db'}"))
    if not args.keep:
        shutil.rmtree(work)
    else:
        print(f"kept {work}")


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    asyncio.run(load_paths(settings, [demo_folder()]))
    rng, sample, have = random.Random(11), Sample(), 40
    table: dict[int, dict[str, list[float]]] = {}
    matches: dict[int, dict[str, float]] = {}
    throughput: dict[int, float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"size {size:,}", flush=True)
        have = asyncio.run(grow(settings, size, have, rng, sample))
        os.sync()  # measure a settled database, not the write-back of the load
        if args.storage == "mongodb":
            print_mongo_sizes(settings.storage, have)
        port = free_port()
        server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                        "--storage", settings.storage, "--log-level", "warning"])
        base = f"http://127.0.0.1:{port}/fhir"
        try:
            wait_for(f"{base}/metadata")
            table[have], matches[have] = measure(base, sample, args.repeat, rng,
                                                 args.interleave)
            script = work / "token.lua"
            numbers = ", ".join(f'"{n}"' for _, n in sample.patients[:1000])
            script.write_text(WRK_LUA % (numbers, ID_CARD))
            throughput[have] = wrk(f"{base}/metadata", args.seconds, 16, script)
        finally:
            stop(server)
        print_table(table, matches, throughput)  # (after each size: a long run shows it early)
    if args.storage == "mongodb":
        print_mongo_sizes(settings.storage, have)
    else:
        db_size = sum(f.stat().st_size for f in work.glob("search.db*")) / 2**30
        print(f"\ndatabase: {db_size:.2f} GiB at {have:,} resources")


def print_table(table: dict[int, dict[str, list[float]]], matches: dict[int, dict[str, float]],
                throughput: dict[int, float]) -> None:
    sizes = sorted(table)
    print("\n| query | " + " | ".join(f"{s:,}: p50 / p95 ms (matches)" for s in sizes)
          + " |")
    print("| --- |" + " --- |" * len(sizes))
    for name in table[sizes[0]]:
        cells = [f"{statistics.median(table[s][name]):.1f} / {p95(table[s][name]):.1f} "
                 f"({matches[s][name]:g})" for s in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| token searches/s (wrk -t1 -c16, one worker) | "
          + " | ".join(f"{throughput[s]:,.0f}" for s in sizes) + " |")


def print_mongo_sizes(url: str, resources: int) -> None:
    """Document and index bytes per resource, per collection (collStats)."""
    print(f"\n| collection | documents | document bytes / resource | stored bytes / resource "
          f"| index bytes / resource | ({resources:,} resources) |\n| --- | --- | --- | --- "
          "| --- |")
    with MongoClient(url) as client:
        db = client.get_default_database()
        for name in sorted(db.list_collection_names()):
            stats = db.command("collStats", name)
            print(f"| {name} | {stats.get('count', 0):,} | {stats.get('size', 0) / resources:,.0f} "
                  f"| {stats.get('storageSize', 0) / resources:,.0f} "
                  f"| {stats.get('totalIndexSize', 0) / resources:,.0f} |")
        entries = db.resources.aggregate([{"$group": {"_id": None, "n": {"$sum": 1}, **{
            table: {"$sum": {"$size": {"$ifNull": [f"$idx.{table}", []]}}} for table in TABLES}}}])
        for found in entries:
            print("\nindex entries per resource: " + ", ".join(
                f"{table} {found[table] / found['n']:.1f}" for table in TABLES))


if __name__ == "__main__":
    main()
