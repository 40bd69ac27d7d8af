"""Figures of issue 13: bulk ``$export`` throughput and memory, and the token endpoint.

``python3 benchmarks/bench_export.py [--sizes 100000,1000000] [--token-seconds 10]``

Grows the alliance data set of ``bench_search.py`` (visit Bundles, in-process) to each size;
at each size starts a server (one worker, auth off), kicks off a system ``$export``, polls
its status every 20 ms (the database read once before, so that it is in the page cache)
and times kick-off → manifest (every file written), sampling the
server's peak RSS (VmHWM, which counts database pages SQLite maps) and anonymous memory;
then measures the ceiling: a bare Python loop over ``sqlite3`` reading the same current
rows in the same order and writing them to one file. Then the token endpoint: a server with
``--auth smart``, assertions signed in advance (RS384 and ES384), posted by 16
connections of wrk for ``--token-seconds``. Only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import start, stop, wait_for, wrk
from bench_hardening import PeakAnon, memory
from bench_search import Sample, grow
from server_process import free_port
from smart import BackendClient

from fhir_server.config import Settings
from fhir_server.loader import load_paths
from fhir_server.package import demo_folder

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}
FORMS_LUA = """
local forms = {}
for line in io.lines("%s") do forms[#forms + 1] = line end
local next_form = 0
request = function()
  next_form = next_form + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"},
                    forms[next_form])
end
"""


def serve(db: Path, *extra: str) -> tuple[object, str]:
    port = free_port()
    process = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                     "--storage", f"sqlite:///{db}", *extra], {"FHIR_ACCESS_LOG": "false"})
    wait_for(f"http://127.0.0.1:{port}/health/ready")
    return process, f"http://127.0.0.1:{port}"


def export(db: Path) -> dict[str, float]:
    process, origin = serve(db)
    try:
        pid = process.pid  # type: ignore[attr-defined]
        before = memory(pid)
        with httpx.Client(base_url=f"{origin}/fhir", timeout=60) as http, \
                PeakAnon(pid) as anon:
            started = time.perf_counter()
            kicked = http.get("/$export", headers=ASYNC)
            status = kicked.headers["content-location"]
            while (answer := http.get(status)).status_code == 202:
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            manifest = answer.json()
        after = memory(pid)
        count = sum(o["count"] for o in manifest["output"])
        folder = Path(f"{db}-exports") / status.rsplit("/", 1)[1]
        size = sum(f.stat().st_size for f in folder.glob("*.ndjson"))
        return {"resources": count, "seconds": seconds, "rate": count / seconds,
                "bytes": size, "rss_before": before["VmRSS"], "rss_peak": after["VmHWM"],
                "anon_before": before["RssAnon"], "anon_peak": anon.peak}
    finally:
        stop(process)  # type: ignore[arg-type]


def warm(db: Path) -> None:
    """Read the database file once, so that no measurement pays for a cold page cache."""
    with open(db, "rb") as file:
        while file.read(1 << 24):
            pass


def ceiling(db: Path, out: Path) -> dict[str, float]:
    """A bare loop: every current row's stored bytes, type by type in rid order, to a file."""
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    count = 0
    with open(out, "wb") as file:
        types = [t for (t,) in conn.execute("SELECT DISTINCT type FROM resources")]
        for rtype in types:
            rows = conn.execute("SELECT h.content FROM resources r JOIN history h ON "
                                "h.seq = r.seq WHERE r.type = ? AND r.deleted = 0 "
                                "ORDER BY r.rid", (rtype,))
            for (content,) in rows:
                file.write(content)
                file.write(b"\n")
                count += 1
    seconds = time.perf_counter() - started
    conn.close()
    out.unlink()
    return {"resources": count, "seconds": seconds, "rate": count / seconds}


def tokens(work: Path, seconds: int, algorithm: str) -> float:
    """Tokens per second: wrk posts token requests, each with its own assertion (signed in
    advance: a replayed one would be refused, and wrk stops on any refusal)."""
    db = work / f"tokens-{algorithm}.db"
    client = BackendClient(f"bench-{algorithm}", algorithm)
    client.register(f"sqlite:///{db}", work, "system/*.rs")
    process, origin = serve(db, "--auth", "smart")
    token_url = f"{origin}/auth/token"
    forms = work / f"forms-{algorithm}.txt"
    forms.write_text("\n".join(urlencode(client.form("system/*.rs", aud=token_url))
                               for _ in range(seconds * 2500)))
    script = work / "tokens.lua"
    script.write_text(FORMS_LUA % forms)
    try:
        return wrk(token_url, seconds, 16, script)
    finally:
        stop(process)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--token-seconds", type=int, default=10)
    parser.add_argument("--keep", help="a folder to keep (and reuse) the database in")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "export.db"
    # random resident IDs repeat at this scale: uniqueness is not what is measured here
    settings = Settings(storage=f"sqlite:///{db}", unique_identifiers="")
    have = asyncio.run(load_paths(settings, [demo_folder()], quiet=True)).loaded \
        if not db.exists() else sqlite3.connect(db).execute(
            "SELECT count(*) FROM resources").fetchone()[0]
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            if have < size:  # draws seeded by the size held: a kept database grows anew
                rng = random.Random(have)
                have = asyncio.run(grow(settings, size, have, rng, Sample()))
            warm(db)  # both runs read from the page cache, as a server that has been running
            got = export(db)
            bare = ceiling(db, work / "ceiling.ndjson")
            rows.append((size, got, bare))
            print(f"{got['resources']:,} resources: export {got['seconds']:.1f} s "
                  f"({got['rate']:,.0f}/s, {got['bytes'] / 2**20:,.0f} MB), RSS "
                  f"{got['rss_before']} → peak {got['rss_peak']} MB, anonymous "
                  f"{got['anon_before']} → peak {got['anon_peak']} MB; bare loop "
                  f"{bare['seconds']:.1f} s ({bare['rate']:,.0f}/s): "
                  f"{got['rate'] / bare['rate']:.2f}× the ceiling", flush=True)
        for algorithm in ("RS384", "ES384") if args.token_seconds else ():
            rate = tokens(work, args.token_seconds, algorithm)
            print(f"token endpoint, {algorithm} assertions: {rate:,.0f} tokens/s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
