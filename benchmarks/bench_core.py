"""Core figures of issue 3: read by id vs a bare Starlette endpoint, single creates, ingest.

Run ``benchmarks/setup.sh`` once, then ``python3 benchmarks/bench_core.py``. Servers and the
load generator (wrk, asyncio httpx for ingest) share this machine; only loopback is used,
every run is bounded in time. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from alliance_bundles import visit_bundle
from server_process import free_port

from fhir_server.validation.identifiers import id_card_check

HERE = Path(__file__).resolve().parent
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = [[%s]]
"""

INGEST_LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local next_body = 0
request = function()
  next_body = next_body %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/fhir+json"},
                    bodies[next_body])
end
"""


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> float:
    """Requests per second that wrk measured (one thread: the other core serves)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx[1]} errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(url)


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(command, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def wrk_ingest(base: str, bundles: list[dict], seconds: int, connections: int,
               work: Path) -> float:
    """Resources per second when wrk posts the transaction Bundles round-robin."""
    lines = work / "bundles.ndjson"
    lines.write_bytes(b"\n".join(orjson.dumps(b) for b in bundles))
    script = work / "ingest.lua"
    script.write_text(INGEST_LUA % lines)
    per_bundle = sum(len(b["entry"]) for b in bundles) / len(bundles)
    return wrk(base, seconds, connections, script) * per_bundle


async def ingest(base: str, bundles: list[dict], concurrency: int) -> tuple[int, float]:
    """POST transaction Bundles with ``concurrency`` clients; resources and seconds."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for bundle in bundles:
        queue.put_nowait(orjson.dumps(bundle))
    total = sum(len(b["entry"]) for b in bundles)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await http.post(base, content=body,
                                       headers={"content-type": "application/fhir+json"})
            response.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return total, time.perf_counter() - started


def alliance(count: int) -> list[dict]:
    rng = random.Random(7)
    return [visit_bundle(rng, "Organization/gulu", "PractitionerRole/chen-jing-shuangfeng")
            for _ in range(count)]


def synthea(folder: Path) -> list[dict]:
    """Synthea bundles, keeping the entries of types this server holds."""
    from fhir_server.core.registry import SUPPORTED_TYPES

    bundles = []
    for path in sorted(folder.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        bundle["entry"] = [e for e in bundle["entry"]
                           if e["resource"]["resourceType"] in SUPPORTED_TYPES]
        bundles.append(bundle)
    return bundles


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bundles", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingest clients")
    parser.add_argument("--synthea", type=Path, help="ingest these Synthea bundles instead")
    parser.add_argument("--wrk-ingest", action="store_true",
                        help="post the ingest Bundles with wrk instead of an asyncio client")
    parser.add_argument("--ingest-only", action="store_true", help="skip the read and create runs")
    args = parser.parse_args()
    if not shutil.which("wrk") and not args.ingest_only:
        sys.exit("wrk is missing: run benchmarks/setup.sh")
    work = Path(tempfile.mkdtemp(prefix="bench-core-"))
    db = work / "bench.db"
    subprocess.run([sys.executable, "-m", "fhir_server", "load", "--quiet", "--storage",
                    f"sqlite:///{db}", str(HERE.parent / "examples" / "demo")], check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                    "--storage", f"sqlite:///{db}", "--workers", str(args.workers),
                    "--log-level", "warning"])
    results: dict[str, str] = {}
    try:
        wait_for(f"{base}/metadata")
        if args.ingest_only:
            bundles = synthea(args.synthea) if args.synthea else alliance(args.bundles)
            if args.wrk_ingest:
                rate = wrk_ingest(base, bundles, args.seconds, args.clients, work)
                print(f"transaction ingest (wrk): {rate:,.0f} resources/s "
                      f"(workers={args.workers}, {args.clients} connections)")
                return
            resources, seconds = asyncio.run(ingest(base, bundles, concurrency=args.clients))
            print(f"transaction ingest: {resources / seconds:,.0f} resources/s "
                  f"({resources} in {seconds:.1f} s, workers={args.workers})")
            return
        body = httpx.get(f"{base}/Patient/zhang-san").content
        read_rps = wrk(f"{base}/Patient/zhang-san", args.seconds, args.connections)
        script = work / "post.lua"
        script.write_text(POST_LUA % orjson.dumps({
            "resourceType": "Patient", "name": [{"text": "张三"}], "gender": "male",
            "birthDate": "1958-03-14",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                            "value": "50011219580314031" + id_card_check(
                                "50011219580314031")}],
            "managingOrganization": {"reference": "Organization/shuangfeng"}}).decode())
        create_rps = wrk(f"{base}/Patient", args.seconds, args.connections, script)
        bundles = (synthea(args.synthea) if args.synthea else
                   alliance(args.bundles))
        resources, seconds = asyncio.run(ingest(base, bundles, concurrency=args.clients))
    finally:
        stop(server)
        if args.ingest_only:
            shutil.rmtree(work)
    body_file = work / "body.json"
    body_file.write_bytes(body)
    bare_port = free_port()
    bare = start([sys.executable, "-m", "uvicorn", "bare_starlette:app", "--port", str(bare_port),
                  "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
                  "--app-dir", str(HERE)], env={"BARE_BODY_FILE": str(body_file)})
    try:
        bare_url = f"http://127.0.0.1:{bare_port}/fhir/Patient/zhang-san"
        wait_for(bare_url)
        bare_rps = wrk(bare_url, args.seconds, args.connections)
    finally:
        stop(bare)
    results = {
        "read by id (req/s)": f"{read_rps:,.0f}",
        "bare Starlette, same bytes (req/s)": f"{bare_rps:,.0f}",
        "read / bare": f"{read_rps / bare_rps:.2f}",
        "single create (req/s)": f"{create_rps:,.0f}",
        "transaction ingest (resources/s)": f"{resources / seconds:,.0f}"
                                            f" ({resources} in {seconds:.1f} s)",
    }
    print(f"| figure | value |  (workers={args.workers}, wrk -t1 -c{args.connections} "
          f"-d{args.seconds}s, {len(body)}-byte body)")
    print("| --- | --- |")
    for name, value in results.items():
        print(f"| {name} | {value} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
