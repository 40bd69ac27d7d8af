"""What operators see of each request: Prometheus metrics and one JSON log line.

Metrics (https://prometheus.io/docs/instrumenting/exposition_formats/): requests by
interaction, resource type and status; latency histograms by interaction; the storage
writer's queue depth and commit group sizes; the database size. With several worker
processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``alliance-fhir serve``) lets any worker
answer for all of them. The log line names the request id, interaction, type, status and
duration — never the query values or the body, which carry personal information; it is
written when the ``fhir_server.access`` logger is enabled for info (``--log-level``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from fhir_server.storage.port import Storage

access_log = logging.getLogger("fhir_server.access")
disable_created_metrics()  # no ``_created`` series: they double the output for no use
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _StorageCollector:
    """Gauges read from storage when scraped."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def collect(self) -> Iterator[GaugeMetricFamily]:
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
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("fhir_requests", "FHIR requests answered",
                                ("interaction", "type", "status"), registry=self.registry)
        self.latency = Histogram("fhir_request_duration_seconds", "Time to answer a request",
                                 ("interaction",), buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.groups = Histogram("fhir_commit_group_size", "Commits per storage transaction",
                                buckets=GROUP_BUCKETS, registry=self.registry)
        storage.observe_groups(self.groups.observe)
        self.exposed = self.registry  # or, with several workers, what they all wrote
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self.exposed)
        self.exposed.register(_StorageCollector(storage))  # type: ignore[arg-type]
        enabled = log_requests and access_log.isEnabledFor(logging.INFO)
        self.lines = LineWriter(stream or sys.stdout.buffer) if enabled else None
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request(self, request_id: str, method: str, interaction: str, resource_type: str,
                status: int, seconds: float) -> None:
        """Count and log one answered request."""
        if self.count:
            key = (interaction, resource_type, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self.requests.labels(interaction, resource_type, str(status)),
                    self.latency.labels(interaction))
            children[0].inc()
            children[1].observe(seconds)
        if self.lines is not None:
            self.lines.write(orjson.dumps({
                "time": time.time(), "request_id": request_id, "method": method,
                "interaction": interaction, "type": resource_type, "status": status,
                "ms": round(seconds * 1000, 3)}))

    def close(self) -> None:
        """Write what the log still holds (shutdown)."""
        if self.lines is not None:
            self.lines.flush()

    def metrics(self) -> bytes:
        return generate_latest(self.exposed)
