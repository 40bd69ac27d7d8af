"""Where ingest's CPU goes, by thread: a steadier figure than resources/s on a shared machine.

``python3 benchmarks/ingest_cpu.py [--workers 1] [--seconds 12] [--code DIR]`` posts the
13-resource alliance Bundles with wrk (8 connections) and reads each server thread's CPU
time from ``/proc`` before and after. Prints resources/s and CPU µs per resource of each
busy thread (per worker: the event loop's main thread and the SQLite writer). ``--code``
runs another checkout's server (e.g. a ``git worktree`` of an older commit) under the same
load, so two versions can be compared on one machine in one sitting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import alliance, start, stop, wait_for, wrk_ingest
from server_process import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(root: int) -> Counter[str]:
    """CPU seconds of every thread of ``root`` and its child processes, by ``pid:tid``."""
    children = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True)
    seconds: Counter[str] = Counter()
    for pid in [root, *map(int, children.stdout.split())]:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            seconds[f"{pid}:{task.name}"] += (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--code", type=Path, help="the checkout whose server runs")
    args = parser.parse_args()
    env = {"PYTHONPATH": str(args.code.resolve())} if args.code else {}
    if args.code:
        os.chdir(args.code)  # ``python -m`` looks in the working directory first
    work = Path(tempfile.mkdtemp(prefix="ingest-cpu-"))
    storage = f"sqlite:///{work / 'ingest.db'}"
    demo = (args.code or Path(__file__).resolve().parent.parent).resolve() / "examples" / "demo"
    subprocess.run([sys.executable, "-m", "fhir_server", "load", "--quiet", "--storage",
                    storage, str(demo)], check=True, env={**os.environ, **env})
    port = free_port()
    server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                    "--workers", str(args.workers), "--storage", storage,
                    "--log-level", "warning"], env)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_for(f"{base}/metadata", settle=2)
        before = thread_cpu(server.pid)
        rate = wrk_ingest(base, alliance(3000), args.seconds, 8, work)
        after = thread_cpu(server.pid)
    finally:
        stop(server)
    resources = rate * args.seconds
    spent = {name: after[name] - before[name] for name in after}
    busy = {name: round(1e6 * cpu / resources) for name, cpu in spent.items() if cpu > 0.3}
    print(f"ingest: {rate:,.0f} resources/s; CPU µs per resource by thread (pid:tid): {busy}; "
          f"all threads {1e6 * sum(spent.values()) / resources:,.0f}")


if __name__ == "__main__":
    main()
