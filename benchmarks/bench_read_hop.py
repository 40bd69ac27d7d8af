"""Point read inline on the event loop vs through a thread pool (a thread hop).

``python3 benchmarks/bench_read_hop.py``: the reason ``SqliteStorage.read`` runs inline.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

from fhir_server.core.versioning import renderer
from fhir_server.storage.port import Write
from fhir_server.storage.sqlite import SqliteStorage

ROUNDS = 20_000


async def main() -> None:
    store = SqliteStorage(f"sqlite:///{tempfile.mkdtemp()}/hop.db")
    await store.open()
    await store.commit([Write("update", "Patient", "p",
                              renderer({"resourceType": "Patient", "id": "p"}))])

    started = time.perf_counter()
    for _ in range(ROUNDS):
        await store.read("Patient", "p")
    inline = (time.perf_counter() - started) / ROUNDS * 1e6
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    for _ in range(ROUNDS // 10):
        await loop.run_in_executor(None, store.read_now, "Patient", "p")
    hop = (time.perf_counter() - started) / (ROUNDS // 10) * 1e6
    print(f"inline read {inline:.1f} µs; through a thread pool {hop:.1f} µs")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
