"""Stores the server's AuditEvents, many in one commit: events recorded while a commit is
under way wait for it and go together in the next. Each ``record`` returns once its
event is stored (nothing is acknowledged before its audit is durable). Events are stored
without their search index rows; those are written in quiet moments (no event for
``QUIET_SECONDS``), and by any search that may find AuditEvents before it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fhir_server.core.service import FhirService
from fhir_server.storage.port import StorageUnavailable
from fhir_server.types import Resource

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.5
INDEX_BATCH = 50  # events indexed per commit (a few milliseconds of the writer's)


class AuditTrail:
    def __init__(self, service: FhirService) -> None:
        self.service = service
        self._waiting: list[tuple[Resource, asyncio.Future[None]]] = []
        self._storing = False
        self._task: asyncio.Task[None] | None = None
        self._activity = 0  # events seen so far
        self._indexing: asyncio.Task[None] | None = None

    async def record(self, event: Resource) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, done))
        if not self._storing:
            self._storing = True
            self._task = asyncio.create_task(self._store())
        await done
        self.noted()

    def noted(self) -> None:
        """An event was stored (here, or committed with a request's writes)."""
        self._activity += 1
        if self._indexing is None or self._indexing.done():
            self._indexing = asyncio.create_task(self._index_when_quiet())

    async def close(self) -> None:
        if self._indexing is not None:
            self._indexing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indexing

    async def _index_when_quiet(self) -> None:
        seen = -1
        while self._activity != seen:
            seen = self._activity
            await asyncio.sleep(QUIET_SECONDS)
            if self._activity != seen:
                continue
            try:
                while self._activity == seen and await self.service.storage.index_deferred(
                        INDEX_BATCH):
                    pass
            except StorageUnavailable as error:  # the next event, or search, tries again
                log.warning("audit events not indexed yet: %s", error)
                return

    async def _store(self) -> None:
        try:
            await asyncio.sleep(0)  # the events of the requests ready now join this batch
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self.service.record_all([event for event, _ in batch])
                except Exception as error:  # each recorder learns its event was not kept
                    _answer(batch, error)
                else:
                    _answer(batch, None)
        finally:
            self._storing = False


def _answer(batch: list[tuple[Resource, asyncio.Future[None]]], error: Exception | None) -> None:
    """Tells each recorder still waiting (one cancelled meanwhile is no longer waiting)."""
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
