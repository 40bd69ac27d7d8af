"""Where ingest time goes: py-spy samples a one-worker server while bundles are posted.

``python3 benchmarks/profile_ingest.py`` prints the functions with most own samples.
Needs root (ptrace) or a py-spy allowed to attach; see benchmarks/setup.sh.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import alliance, ingest, start, stop, wait_for
from server_process import free_port

HERE = Path(__file__).resolve().parent


def top_functions(raw: Path, count: int = 15) -> list[tuple[str, float]]:
    """Own-time share per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        own[leaf.split(" (")[0] + " (" + leaf.split("(")[-1].split(":")[0].split("/")[-1]
            + ")"] += int(samples)
    total = sum(own.values())
    return [(name, 100 * n / total) for name, n in own.most_common(count)]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="profile-"))
    db = work / "p.db"
    subprocess.run([sys.executable, "-m", "fhir_server", "load", "--quiet", "--storage",
                    f"sqlite:///{db}", str(HERE.parent / "examples" / "demo")], check=True)
    port = free_port()
    server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                    "--storage", f"sqlite:///{db}", "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_for(f"{base}/metadata")
        raw = work / "ingest.txt"
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--format", "raw",
                                "--output", str(raw), "--rate", "200", "--threads",
                                "--nonblocking"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        resources, seconds = asyncio.run(ingest(base, alliance(1500), concurrency=4))
        spy.send_signal(signal.SIGINT)
        spy.wait()
    finally:
        stop(server)
    print(f"ingest: {resources / seconds:,.0f} resources/s (one worker, profiled)")
    for name, share in top_functions(raw):
        print(f"{share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
