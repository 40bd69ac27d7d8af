"""Long CPU work on the event loop, cut into slices so other requests are answered.

A transaction of thousands of entries is prepared (validated, indexed) on the event loop;
without a break a read on the same worker waits for all of it (3.8 s for 15 MB). Between
entries of a long loop, :meth:`Slices.pause` lets threads that wait for the GIL run (the
storage writer, ``time.sleep(0)`` releases it), and every ``slice_seconds`` it also lets
the event loop run its other ready work (``asyncio.sleep(0)``). A short loop (a 13-entry
visit Bundle) does not hand the GIL over at each item: each hand-over waited for the
writer's statements, a third of the ingest time.
"""

from __future__ import annotations

import asyncio
import time

SLICE_SECONDS = 0.005  # Python's own GIL switch interval
MANY = 50  # items from which a loop hands the GIL over after each (ingest: 13 per Bundle)


class Slices:
    """Call ``await slices.pause()`` between the items of a long loop."""

    def __init__(self, items: int, slice_seconds: float = SLICE_SECONDS) -> None:
        self.slice_seconds = slice_seconds
        self.yield_gil = items > MANY  # a short loop is over before a GIL hand-over helps
        self._since = time.perf_counter()

    async def pause(self) -> None:
        if self.yield_gil:
            time.sleep(0)  # the writer thread re-takes the GIL after every SQLite statement
        now = time.perf_counter()
        if now - self._since >= self.slice_seconds:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
