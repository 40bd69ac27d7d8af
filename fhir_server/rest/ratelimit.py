"""An optional per-client rate limit: a token bucket per client address (429 beyond it).

``FHIR_RATE_LIMIT`` requests per second on average, with bursts of twice that; each worker
counts its own requests (with N workers a client may reach N times the rate). Off by
default. Buckets of clients not seen for a minute are dropped, so memory stays bounded.
"""

from __future__ import annotations

import math
import time

from fhir_server.core.errors import TooManyRequests

IDLE_SECONDS = 60.0
PRUNE_AT = 10_000  # buckets kept before idle ones are dropped


class RateLimiter:
    """Token buckets by client address."""

    def __init__(self, per_second: float) -> None:
        self.rate = per_second
        self.burst = max(1.0, 2 * per_second)
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def check(self, client: str, now: float | None = None) -> None:
        """Take a token for ``client``; TooManyRequests (with Retry-After) when none is left."""
        now = time.monotonic() if now is None else now
        tokens, when = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise TooManyRequests(f"More than {self.rate:g} requests per second from this "
                                  f"client; retry in {wait} s", wait)
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > PRUNE_AT:
            self._buckets = {c: b for c, b in self._buckets.items()
                             if now - b[1] < IDLE_SECONDS}
