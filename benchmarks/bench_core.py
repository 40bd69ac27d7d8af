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


def wrk(url: str, seconds: int, connections: int, script: Path | None = None,
        headers: dict[str, str] | None = None) -> float:
    """Requests per second that wrk measured (one thread: the other core serves)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in (headers or {}).items():
        command[1:1] = ["-H", f"{name}: {value}"]
    if script:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx[1]} errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]


def wait_for(url: str, settle: float = 0.0) -> None:
    """Until ``url`` answers; then ``settle`` seconds more, so every worker of a multi-worker
    server is up before wrk opens its connections (a worker still starting gets none of
    them, and the run measures one worker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                time.sleep(settle)
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
    from fhir_server.core.registry import r4_resource_types

    bundles = []
    for path in sorted(folder.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        bundle["entry"] = [e for e in bundle["entry"]
                           if e["resource"]["resourceType"] in r4_resource_types()]
        bundles.append(bundle)
    return bundles


def measure_ingest(base: str, args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(figure name, value) of transaction ingest with the chosen load generator."""
    bundles = synthea(args.synthea) if args.synthea else alliance(args.bundles)
    if args.ingest_client == "wrk":
        rate = wrk_ingest(base, bundles, args.seconds, args.clients, work)
        return (f"transaction ingest, wrk -c{args.clients} (resources/s)", f"{rate:,.0f}")
    resources, seconds = asyncio.run(ingest(base, bundles, concurrency=args.clients))
    return (f"transaction ingest, asyncio httpx x{args.clients} (resources/s)",
            f"{resources / seconds:,.0f} ({resources} in {seconds:.1f} s)")


def create_script(work: Path) -> Path:
    script = work / "post.lua"
    script.write_text(POST_LUA % orjson.dumps({
        "resourceType": "Patient", "name": [{"text": "张三"}], "gender": "male",
        "birthDate": "1958-03-14",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                        "value": "50011219580314031" + id_card_check("50011219580314031")}],
        "managingOrganization": {"reference": "Organization/shuangfeng"}}).decode())
    return script


def bare_rps(body: bytes, args: argparse.Namespace, work: Path) -> float:
    """A bare Starlette endpoint returning ``body``, measured like our read."""
    body_file = work / "body.json"
    body_file.write_bytes(body)
    port = free_port()
    bare = start([sys.executable, "-m", "uvicorn", "bare_starlette:app", "--port", str(port),
                  "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
                  "--app-dir", str(HERE)], env={"BARE_BODY_FILE": str(body_file)})
    try:
        url = f"http://127.0.0.1:{port}/fhir/Patient/zhang-san"
        wait_for(url, settle=3)
        return wrk(url, args.seconds, args.connections)
    finally:
        stop(bare)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bundles", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent ingest clients")
    parser.add_argument("--ingest-client", choices=("wrk", "asyncio"), default="wrk",
                        help="post the ingest Bundles with wrk (C, light) or asyncio httpx")
    parser.add_argument("--synthea", type=Path, help="ingest these Synthea bundles instead")
    parser.add_argument("--ingest-only", action="store_true", help="skip the read and create runs")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: run benchmarks/setup.sh")
    work = Path(tempfile.mkdtemp(prefix="bench-core-"))
    db = work / "bench.db"
    subprocess.run([sys.executable, "-m", "fhir_server", "load", "--quiet", "--storage",
                    f"sqlite:///{db}", str(HERE.parent / "examples" / "demo")], check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                    "--storage", f"sqlite:///{db}", "--workers", str(args.workers),
                    "--log-level", "warning"],
                   {"FHIR_ALLOW_ANY_EXTENSION": "true"} if args.synthea else None)
    results: dict[str, str] = {}
    try:
        wait_for(f"{base}/metadata", settle=3)
        body = httpx.get(f"{base}/Patient/zhang-san").content
        if not args.ingest_only:
            read_rps = wrk(f"{base}/Patient/zhang-san", args.seconds, args.connections)
            results["read by id (req/s)"] = f"{read_rps:,.0f}"
            creates = wrk(f"{base}/Patient", args.seconds, args.connections, create_script(work))
            results["single create (req/s)"] = f"{creates:,.0f}"
        name, value = measure_ingest(base, args, work)
        results[name] = value
    finally:
        stop(server)
    if not args.ingest_only:
        bare = bare_rps(body, args, work)
        results["bare Starlette, same bytes (req/s)"] = f"{bare:,.0f}"
        results["read / bare"] = f"{read_rps / bare:.2f}"
    print(f"| figure | value |  (workers={args.workers}, wrk -t1 -c{args.connections} "
          f"-d{args.seconds}s, {len(body)}-byte body)")
    print("| --- | --- |")
    for name, value in results.items():
        print(f"| {name} | {value} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
