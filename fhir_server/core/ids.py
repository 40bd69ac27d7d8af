"""Server-assigned ids: UUIDv7 (RFC 9562), time-ordered and monotonic per process.

Ordered ids land next to each other in every index keyed by id (the current-version
table, history, references), so a commit dirties a few pages instead of one page per
resource: random UUIDv4 keys made SQLite ingest markedly slower.
"""

from __future__ import annotations

import os
import threading
import time
import uuid


class Uuid7:
    """Makes UUIDv7 strings; a 12-bit counter orders those of the same millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = (0, 0)

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            last_ms, counter = self._last
            if ms <= last_ms:
                ms, counter = last_ms, counter + 1
                if counter > 0xFFF:
                    ms, counter = last_ms + 1, 0
            else:
                counter = 0
            self._last = (ms, counter)
        random = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | random
        return str(uuid.UUID(int=value))
