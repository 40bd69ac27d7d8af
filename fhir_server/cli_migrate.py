"""``alliance-fhir migrate --from URL --to URL``: copy a store into an empty one (SQLite to
MongoDB and back), with a progress bar, verified at the end (``migrate.py``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from fhir_server.app import build_service, open_storage
from fhir_server.config import Settings
from fhir_server.migrate import MigrationError, Report, migrate
from fhir_server.storage.port import StorageError

BAR = 30  # characters of the progress bar


def _migrate(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(_run(args.source, args.target))
    except (MigrationError, StorageError, ValueError) as error:
        print(f"\nalliance-fhir: migrate failed: {error}", file=sys.stderr)
        return 1
    print(f"\nmigrated {sum(report.versions.values()):,} versions of "
          f"{len(report.versions)} resource types, {report.records} records and "
          f"{report.links:,} audit links; verified: counts per type and SHA-256 "
          f"{report.sha256} match on both sides", file=sys.stderr)
    return 0


async def _run(source_url: str, target_url: str) -> Report:
    source = build_service(Settings.from_env(storage=source_url))
    target = open_storage(Settings.from_env(storage=target_url))
    await source.storage.open()
    try:
        await source.load_search_parameters()  # (the source's index rules, untouched)
        await target.open()
        try:
            return await migrate(source, target, _bar(time.monotonic()))
        finally:
            await target.close()
    finally:
        await source.storage.close()


def _bar(started: float) -> Any:
    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        rate = done / max(time.monotonic() - started, 1e-3)
        filled = round(share * BAR)
        print(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {share:4.0%} {done:,} / {total:,} "
              f"versions, {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
    return show


def add_migrate_command(commands: Any) -> None:
    move = commands.add_parser("migrate", help="copy every version, the audit chain and the "
                                               "clients into an empty store, and verify")
    move.add_argument("--from", dest="source", required=True,
                      help="the store to copy: sqlite:///a.db or mongodb://…/database")
    move.add_argument("--to", dest="target", required=True,
                      help="an empty store: mongodb://…/database or sqlite:///b.db")
    move.set_defaults(run=_migrate)
