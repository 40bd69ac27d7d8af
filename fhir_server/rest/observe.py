"""What operators see of each request: Prometheus metrics and one JSON log line.

Metrics (https://prometheus.io/docs/instrumenting/exposition_formats/): requests by
interaction, resource type and status; latency histograms by interaction; the storage
writer's queue depth and commit group sizes; the database size. A request only adds to
plain per-process tallies (no locks, no shared memory: ~0.4 µs instead of the ~2 µs of
``prometheus_client``'s own counters); they become metric families when ``/metrics`` is
scraped. With several worker processes, each worker writes its tallies to a file in
``FHIR_METRICS_DIR`` (set by ``alliance-fhir serve``) at most once a second, and whichever
worker is scraped adds up the others' files and its own live tallies. The log line names
the request id, interaction, type, status and duration — never the query values or the
body, which carry personal information; it is written when the ``fhir_server.access``
logger is enabled for info (``--log-level``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from fhir_server import jsonbytes
from fhir_server.storage.port import Storage

access_log = logging.getLogger("fhir_server.access")
METRICS_DIR = "FHIR_METRICS_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
Tallies = dict[str, Any]  # {"requests": {key: n}, "latency": {interaction: counts}, ...}


class Histogram:
    """Observations counted per bucket (the last one is +Inf), the sum after them."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds

    def new(self) -> list[float]:
        return [0] * (len(self.bounds) + 2)

    def observe(self, counts: list[float], value: float) -> None:
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def buckets(self, counts: list[float]) -> list[tuple[str, float]]:
        """Cumulative buckets as Prometheus wants them."""
        running, out = 0.0, []
        for bound, count in zip((*self.bounds, float("inf")), counts[:-1], strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


LATENCY, GROUPS = Histogram(LATENCY_BUCKETS), Histogram(GROUP_BUCKETS)


def _add(total: Tallies, part: Tallies) -> None:
    """Add one worker's tallies (as written to its file) to ``total``."""
    for key, count in part["requests"]:
        total["requests"][tuple(key)] = total["requests"].get(tuple(key), 0) + count
    for interaction, counts in part["latency"].items():
        into = total["latency"].setdefault(interaction, LATENCY.new())
        into[:] = [a + b for a, b in zip(into, counts, strict=True)]
    total["groups"][:] = [a + b for a, b in zip(total["groups"], part["groups"], strict=True)]


def _empty() -> Tallies:
    return {"requests": {}, "latency": {}, "groups": GROUPS.new()}


class _Families:
    """The metric families of the tallies, and the gauges read from storage, at scrape."""

    def __init__(self, storage: Storage, tallies: Callable[[], Iterable[Tallies]]) -> None:
        self.storage, self.tallies = storage, tallies

    def collect(self) -> Iterator[Any]:
        total = _empty()
        for part in self.tallies():
            _add(total, part)
        requests = CounterMetricFamily("fhir_requests", "FHIR requests answered",
                                       labels=("interaction", "type", "status"))
        for (interaction, resource_type, status), count in sorted(total["requests"].items()):
            requests.add_metric((interaction, resource_type, str(status)), count)
        yield requests
        latency = HistogramMetricFamily("fhir_request_duration_seconds",
                                        "Time to answer a request", labels=("interaction",))
        for interaction, counts in sorted(total["latency"].items()):
            latency.add_metric((interaction,), LATENCY.buckets(counts), counts[-1])
        yield latency
        groups = HistogramMetricFamily("fhir_commit_group_size",
                                       "Commits per storage transaction")
        groups.add_metric((), GROUPS.buckets(total["groups"]), total["groups"][-1])
        yield groups
        stats = self.storage.stats()
        yield GaugeMetricFamily("fhir_writer_queue_depth",
                                "Commits waiting for the storage writer", stats.writer_queue)
        yield GaugeMetricFamily("fhir_database_size_bytes",
                                "Bytes the database takes on disk", stats.size_bytes)


class LineWriter:
    """JSON lines to a stream, buffered: written when 32 KiB are waiting, and at most
    ``delay`` seconds after a line was added (the ``logging`` module costs ~19 µs a line,
    a fifth of a read; this costs ~1.5)."""

    def __init__(self, stream: BinaryIO, delay: float = 0.2, size: int = 32 * 1024) -> None:
        self.stream, self.delay, self.size = stream, delay, size
        self._lines: list[bytes] = []
        self._waiting = 0
        self._scheduled = False

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self._waiting += len(line) + 1
        if self._waiting >= self.size:
            self.flush()
        elif not self._scheduled:
            try:
                asyncio.get_running_loop().call_later(self.delay, self.flush)
                self._scheduled = True
            except RuntimeError:  # no event loop (a tool): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines, self._waiting = self._lines, [], 0
            with contextlib.suppress(OSError, ValueError):  # a closed or full log stream
                self.stream.write(b"\n".join(lines) + b"\n")
                self.stream.flush()


class Observer:
    """Counts, times and logs requests; renders ``/metrics``."""

    def __init__(self, storage: Storage, count: bool = True, log_requests: bool = True,
                 stream: BinaryIO | None = None) -> None:
        self.count = count
        self.tallies = _empty()
        self._requests: dict[tuple[str, str, int], int] = self.tallies["requests"]
        self._latency: dict[str, list[float]] = self.tallies["latency"]
        groups = self.tallies["groups"]
        storage.observe_groups(lambda size: GROUPS.observe(groups, size))
        folder = os.environ.get(METRICS_DIR)
        self.shared = Path(folder) if folder else None  # several workers: their files
        self._own_file = f"worker-{os.getpid()}.json"
        self._publishing = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Families(storage, self.seen))  # type: ignore[arg-type]
        enabled = log_requests and access_log.isEnabledFor(logging.INFO)
        self.lines = LineWriter(stream or sys.stdout.buffer) if enabled else None

    def request(self, request_id: str, method: str, interaction: str, resource_type: str,
                status: int, seconds: float) -> None:
        """Count and log one answered request."""
        if self.count:
            key = (interaction, resource_type, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._latency.get(interaction)
            if counts is None:
                counts = self._latency[interaction] = LATENCY.new()
            LATENCY.observe(counts, seconds)
            if self.shared is not None and not self._publishing:
                self._publishing = True
                asyncio.get_running_loop().call_later(1.0, self.publish)
        if self.lines is not None:
            self.lines.write(jsonbytes.dumps({
                "time": time.time(), "request_id": request_id, "method": method,
                "interaction": interaction, "type": resource_type, "status": status,
                "ms": round(seconds * 1000, 3)}))

    def publish(self) -> None:
        """Write this worker's tallies for the other workers to add up (atomically)."""
        self._publishing = False
        if self.shared is None:
            return
        data = {"requests": list(self._requests.items()), "latency": self._latency,
                "groups": self.tallies["groups"]}
        temporary = self.shared / (self._own_file + ".tmp")
        with contextlib.suppress(OSError):  # the folder went away: scrapes miss this worker
            temporary.write_bytes(jsonbytes.dumps(data))
            temporary.replace(self.shared / self._own_file)

    def seen(self) -> Iterator[Tallies]:
        """This worker's live tallies and, with several workers, the others' last files."""
        yield {"requests": list(self._requests.items()), "latency": self._latency,
               "groups": self.tallies["groups"]}
        if self.shared is not None:
            for path in self.shared.glob("worker-*.json"):
                if path.name != self._own_file:
                    with contextlib.suppress(OSError, orjson.JSONDecodeError):
                        yield orjson.loads(path.read_bytes())

    def close(self) -> None:
        """Write what the log still holds and the last tallies (shutdown)."""
        if self.lines is not None:
            self.lines.flush()
        self.publish()

    def metrics(self) -> bytes:
        return generate_latest(self.registry)
