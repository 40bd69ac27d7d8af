"""Bulk loading for ``alliance-fhir load``: Bundles, NDJSON files and folders of them.

Transaction Bundles commit whole (their ``urn:uuid`` references resolved); every other
resource is upserted (PUT with its id, or POST without) in batched transactions of
``batch_size``. Entries of types this server does not hold are skipped and counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fhir_server.app import build_service
from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import parse_json
from fhir_server.core.service import FhirService, Prepared
from fhir_server.core.transaction import TransactionPlanner, parse_entry
from fhir_server.package import MANIFESTS


@dataclass
class LoadSummary:
    files: int = 0
    loaded: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    note: str = ""

    def line(self) -> str:
        rate = self.loaded / self.seconds if self.seconds else 0.0
        text = (f"loaded {self.loaded} resources from {self.files} files in {self.seconds:.1f} s "
                f"({rate:,.0f}/s); {self.skipped} skipped (unsupported type), "
                f"{self.failed} failed")
        return f"{text}; {self.note}" if self.note else text


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson")
                              and p.name not in MANIFESTS)
        else:
            yield path


class Loader:
    """Loads files into one opened service, reporting to a progress bar."""

    def __init__(self, service: FhirService, batch_size: int, bar: tqdm) -> None:
        self.service, self.batch_size, self.bar = service, batch_size, bar
        self.summary = LoadSummary()
        self._pending: list[Prepared] = []

    def _fail(self, where: str, error: Exception) -> None:
        self.bar.write(f"{where}: {error}")

    async def load_file(self, path: Path) -> None:
        self.summary.files += 1
        try:
            if path.suffix == ".ndjson":
                with path.open("rb") as lines:
                    for number, line in enumerate(lines, start=1):
                        if line.strip():
                            await self._add(parse_json(line, "line"), f"{path}:{number}")
            else:
                await self._add_document(parse_json(path.read_bytes(), "file"), str(path))
            await self.flush()
        except FhirError as error:
            self.summary.failed += 1
            self._fail(str(path), error)

    async def _add_document(self, document: dict, where: str) -> None:
        if document.get("resourceType") != "Bundle":
            await self._add(document, where)
        elif document.get("type") == "transaction":
            await self.flush()
            await self._transaction(document, where)
        else:
            for index, entry in enumerate(document.get("entry") or []):
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    await self._add(entry["resource"], f"{where} entry {index}")

    async def _transaction(self, bundle: dict, where: str) -> None:
        raw = [e for e in bundle.get("entry") or []
               if self._supported((e.get("resource") or {}).get("resourceType")
                                  or str((e.get("request") or {}).get("url", "")).split("/")[0])]
        entries = [e for e in (parse_entry(r, i, "") for i, r in enumerate(raw))
                   if e.method != "GET"]
        try:
            await TransactionPlanner(self.service).commit(entries)
            self.summary.loaded += len(entries)
        except FhirError as error:
            self.summary.failed += len(entries)
            self._fail(where, error)
        self.bar.update(len(entries))

    def _supported(self, resource_type: str | None) -> bool:
        if resource_type and self.service.registry.is_supported(resource_type):
            return True
        self.summary.skipped += 1
        return False

    async def _add(self, resource: object, where: str) -> None:
        if not isinstance(resource, dict) or not self._supported(resource.get("resourceType")):
            return
        rtype = resource["resourceType"]
        try:
            if resource.get("id"):
                prepared = self.service.prepare_update(rtype, resource["id"], resource)
            else:
                prepared = self.service.prepare_create(rtype, resource)
        except FhirError as error:
            self.summary.failed += 1
            self._fail(where, error)
            return
        self._pending.append(prepared)
        if len(self._pending) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self.service.commit(batch)
            self.summary.loaded += len(batch)
        except FhirError as error:
            self.summary.failed += len(batch)
            self._fail(f"batch of {len(batch)}", error)
        self.bar.update(len(batch))


async def load_paths(settings: Settings, paths: list[Path], batch_size: int = 500,
                     quiet: bool = True, unless_present: str | None = None) -> LoadSummary:
    """Open the configured storage (installing the alliance package), load every file
    unless the resource ``unless_present`` (``Type/id``) exists, close; return the summary."""
    service = build_service(settings)
    await service.open()
    started = time.perf_counter()
    try:
        if unless_present and await service.storage.read(*unless_present.split("/", 1)):
            return LoadSummary(note=f"storage already holds {unless_present}; nothing loaded")
        with tqdm(disable=quiet, unit=" res", desc="loading") as bar:
            loader = Loader(service, batch_size, bar)
            for path in _files(paths):
                await loader.load_file(path)
    finally:
        await service.close()
    loader.summary.seconds = time.perf_counter() - started
    return loader.summary


async def reindex_storage(settings: Settings) -> int:
    """Open the configured storage and rebuild its search index."""
    service = build_service(settings)
    await service.open()
    try:
        return await service.reindex()
    finally:
        await service.close()
