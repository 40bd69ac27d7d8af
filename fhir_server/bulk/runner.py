"""Runs export jobs inside the server: each walks its types in storage order, a batch at
a time, appending the stored bytes (shaped only when ``_elements`` or de-identification
asks) to NDJSON files; memory stays that of one batch whatever the data's size.

Every second (and at its end) the job's state is kept in storage. A job belongs to the
worker holding its lease (renewed while it runs); a sweep (every few seconds, in every
worker) takes up jobs whose lease lapsed (their server stopped: they resume from their
last checkpoint, the files cut back to what it recorded), and removes expired or
cancelled jobs' files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qsl

from fhir_server import jsonbytes
from fhir_server.bulk.deidentify import Pseudonyms, deidentify
from fhir_server.bulk.job import DONE, FAILED, KIND, RUNNING, Job, Output
from fhir_server.bulk.request import any_of_filters
from fhir_server.config import Settings
from fhir_server.core.gate import Gate
from fhir_server.core.service import FhirService
from fhir_server.core.summary import select_elements
from fhir_server.periodic import Periodic
from fhir_server.search.plan import IdMatch, Node
from fhir_server.storage.port import ExportSlice
from fhir_server.validation.structure import r4_table

log = logging.getLogger("fhir_server")
LEASE_KIND, CANCELLED_KIND = "export-lease", "export-cancelled"
LEASE_MS = 10_000  # a job whose worker stopped renewing is taken up this long after
CHECKPOINT_SECONDS = 1.0  # the job's state is kept this often (and when it ends)
SWEEP_SECONDS = 2.0
NOTES = "errors-1.ndjson"
GateSource = Callable[[Job], Awaitable[Gate]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ExportRunner:
    """The export jobs of one worker, and the sweep that finds the others'."""

    def __init__(self, service: FhirService, settings: Settings) -> None:
        self.service, self.storage = service, service.storage
        self.folder = Path(settings.export_folder)
        self.file_bytes = settings.export_file_bytes
        self.batch = settings.export_batch
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.live: dict[str, Job] = {}  # the jobs running here, as they progress
        self._sweeper = Periodic(self.sweep, SWEEP_SECONDS, "the export sweep")
        self.gates: GateSource | None = None  # auth on: the gate of a job's user

    async def open(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweeper.start()

    async def close(self) -> None:
        """Stop every job here (their leases lapse: a later start resumes them)."""
        await self._sweeper.close()
        for task in list(self.tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()

    def files(self, job_id: str) -> Path:
        return self.folder / job_id

    async def running(self) -> int:
        jobs = await self.storage.list_records(KIND)
        return sum(1 for r in jobs if Job.from_bytes(r.value).status == RUNNING)

    async def start(self, job: Job) -> None:
        await self._keep(job)
        if await self._claim(job.id):
            self.tasks[job.id] = asyncio.create_task(self._run(job))

    async def load(self, job_id: str) -> Job | None:
        """The job (as it runs, if it runs here), or None if unknown, expired or cancelled."""
        if await self.storage.get_record(CANCELLED_KIND, job_id) is not None:
            return None
        value = await self.storage.get_record(KIND, job_id)
        if value is None:
            return None
        return self.live.get(job_id) or Job.from_bytes(value)

    async def cancel(self, job: Job) -> None:
        """Stop a job and remove it and its files (its status is then 404)."""
        await self.storage.put_record(CANCELLED_KIND, job.id, b"", job.expires_ms)
        task = self.tasks.pop(job.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._remove(job.id)

    async def _remove(self, job_id: str) -> None:
        await self.storage.delete_record(KIND, job_id)
        await self.storage.delete_record(LEASE_KIND, job_id)
        await asyncio.to_thread(shutil.rmtree, self.files(job_id), True)

    async def _keep(self, job: Job) -> None:
        await self.storage.put_record(KIND, job.id, job.to_bytes(), job.expires_ms)

    async def _claim(self, job_id: str, renew: bool = False) -> bool:
        return await self.storage.put_record(LEASE_KIND, job_id, b"", now_ms() + LEASE_MS,
                                             only_new=not renew)

    async def _run(self, job: Job) -> None:
        self.live[job.id] = job
        try:
            await self._walk(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the job fails, the server goes on
            log.exception("export %s failed", job.id)
            job.status, job.failure = FAILED, f"{type(error).__name__}: {error}"
            if await self.storage.get_record(CANCELLED_KIND, job.id) is None:
                await self._keep(job)
        finally:
            self.tasks.pop(job.id, None)
            self.live.pop(job.id, None)
            with contextlib.suppress(Exception):
                await self.storage.delete_record(LEASE_KIND, job.id)

    async def _walk(self, job: Job) -> None:
        folder = self.files(job.id)
        await asyncio.to_thread(folder.mkdir, 0o700, False, True)
        types = job.request.types
        await asyncio.to_thread(_tidy, job, folder)  # resumed: as the last checkpoint left it
        pseudonyms = Pseudonyms(bytes.fromhex(job.secret)) if job.request.deidentify else None
        kept = time.monotonic()
        while job.part < len(types):
            rtype = types[job.part]
            contents, after = await self.storage.export_batch(ExportSlice(
                rtype, job.mark, job.after, self.batch, await self._criteria(job, rtype),
                job.request.since_ms))
            lines = self._shaped(contents, job, pseudonyms) if contents else []
            while lines:  # into the open file, up to its size (a new file for the rest)
                taken = _fitting(lines, self.file_bytes - job.file_bytes, job.file_count == 0)
                if taken:
                    data = b"\n".join(lines[:taken]) + b"\n"
                    await asyncio.to_thread(_append, folder / job.open_file(rtype), data)
                    job.file_bytes += len(data)
                    job.file_count += taken
                    job.written += taken
                lines = lines[taken:]
                if lines:
                    self._close_file(job, rtype, folder)
            if after is None or job.file_bytes >= self.file_bytes:
                self._close_file(job, rtype, folder)
            if after is None:
                job.part, job.after, job.file_number = job.part + 1, 0, 1
            else:
                job.after = after
            if job.part == len(types):
                await asyncio.to_thread(_write_notes, job, folder)
                job.status = DONE
            if job.status == DONE or time.monotonic() - kept >= CHECKPOINT_SECONDS:
                if await self.storage.get_record(CANCELLED_KIND, job.id) is not None:
                    return
                await self._keep(job)
                await self._claim(job.id, renew=True)
                kept = time.monotonic()

    @staticmethod
    def _close_file(job: Job, rtype: str, folder: Path) -> None:
        name = job.open_file(rtype)
        if job.file_count:
            job.outputs.append(Output(rtype, name, job.file_count))
            job.file_number += 1
        else:
            (folder / name).unlink(missing_ok=True)
        job.file_bytes = job.file_count = 0

    async def _criteria(self, job: Job, rtype: str) -> tuple[Node, ...]:
        """What a resource of this type must match: the compartment of the export's
        patients (Patient and Group level), what its user may see (their tier), and any of
        its ``_typeFilter`` queries."""
        searcher = self.service.searcher
        request = job.request
        where: tuple[Node, ...] = ()
        if request.level != "system":
            ids = tuple(request.patients) if request.patients or request.group else None
            if rtype == "Patient":
                where = (IdMatch(ids, types=("Patient",)),) if ids is not None else ()
            else:
                where = (searcher.compartment("Patient", ids, rtype),)
        if job.user and self.gates is not None:  # what the user may see (as it is now)
            where += (await self.gates(job)).criteria((rtype,))
        queries = request.filters.get(rtype)
        if queries:
            parsed = [await searcher.parse_request(
                (rtype,), parse_qsl(q, keep_blank_values=True), strict=True) for q in queries]
            where += any_of_filters([p.query.where for p in parsed])
        return where

    @staticmethod
    def _shaped(contents: list[bytes], job: Job, pseudonyms: Pseudonyms | None) -> list[bytes]:
        elements = job.request.elements
        if not elements and pseudonyms is None:
            return contents  # the stored bytes, as they are
        table = r4_table()
        shaped = []
        for content in contents:
            resource = jsonbytes.loads(content)
            if elements:
                rtype = resource.get("resourceType")
                mine = [e for e in elements if "." not in e or e.split(".", 1)[0] == rtype]
                if mine:
                    resource = select_elements(resource, mine, table)
            if pseudonyms is not None:
                resource = deidentify(resource, pseudonyms)
            shaped.append(jsonbytes.dumps(resource))
        return shaped

    async def sweep(self) -> None:
        """Resume running jobs nobody holds; remove what expired or was cancelled."""
        known = set()
        for record in await self.storage.list_records(KIND):
            known.add(record.key)
            job = Job.from_bytes(record.value)
            if job.status == RUNNING and job.id not in self.tasks \
                    and await self.storage.get_record(CANCELLED_KIND, job.id) is None \
                    and await self._claim(job.id):
                log.info("resuming export %s", job.id)
                self.tasks[job.id] = asyncio.create_task(self._run(job))
        for record in await self.storage.list_records(CANCELLED_KIND):
            if record.key in known or self.files(record.key).exists():
                await self._remove(record.key)
        for folder in await asyncio.to_thread(_folders, self.folder):
            if folder.name not in known:  # its job expired
                await asyncio.to_thread(shutil.rmtree, folder, True)


def _write_notes(job: Job, folder: Path) -> None:
    """The request's warnings as the manifest's error file (OperationOutcome lines)."""
    if not job.request.notes:
        return
    lines = [jsonbytes.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "not-supported", "diagnostics": note}]})
        for note in job.request.notes]
    (folder / NOTES).write_bytes(b"\n".join(lines) + b"\n")
    job.outputs.append(Output("OperationOutcome", NOTES, len(lines)))


def _fitting(lines: list[bytes], room: int, empty: bool) -> int:
    """How many of the lines fit in ``room`` bytes (one at least into an empty file)."""
    if sum(map(len, lines)) + len(lines) <= room:
        return len(lines)
    taken = 0
    for line in lines:
        room -= len(line) + 1
        if room < 0 and not (empty and taken == 0):
            break
        taken += 1
    return taken


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def _tidy(job: Job, folder: Path) -> None:
    """The job's files as its state says: the finished ones, and the open one cut back to
    its size at the last checkpoint; anything written since (files too) goes."""
    types = job.request.types
    current = job.open_file(types[job.part]) if job.part < len(types) else None
    finished = {o.name for o in job.outputs}
    for path in folder.glob("*.ndjson"):
        if path.name == current:
            os.truncate(path, job.file_bytes)
        elif path.name not in finished:
            path.unlink()


def _folders(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
