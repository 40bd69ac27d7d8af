"""A job a worker runs every few seconds in the background until it closes (the export
sweep, the referral deadlines).

It stops on an event as well as by cancellation: a database driver may swallow a task's
cancellation (PyMongo did), and the server's shutdown then waited forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("fhir_server")
CLOSE_SECONDS = 10.0


async def finish(task: asyncio.Task[None]) -> None:
    """Wait for a background task told to stop; cancel it when it does not in time."""
    try:
        await asyncio.wait_for(asyncio.shield(task), CLOSE_SECONDS)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Periodic:
    """Runs ``job`` now and then every ``seconds``, logging (not stopping on) its failures."""

    def __init__(self, job: Callable[[], Awaitable[object]], seconds: float, name: str) -> None:
        self.job, self.seconds, self.name = job, seconds, name
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._forever())

    async def close(self) -> None:
        """Stop after the job's current round (cancelled only if that takes longer than
        ``CLOSE_SECONDS``: a database driver cancelled mid-operation may leak a socket)."""
        self._stop.set()
        if self._task is not None:
            await finish(self._task)
            self._task = None

    async def _forever(self) -> None:
        while not self._stop.is_set():
            try:
                await self.job()
            except Exception:
                log.exception("%s failed", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.seconds)
