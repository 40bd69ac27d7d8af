"""``alliance-fhir audit verify|export|purge``: the audit administrator's tools for the
audit chain (see ``audit/chain.py``)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fhir_server.app import build_service
from fhir_server.audit import chain
from fhir_server.config import Settings
from fhir_server.core.service import FhirService

T = TypeVar("T")


def _with_service(storage_url: str | None, job: Callable[[FhirService], Awaitable[T]]) -> T:
    async def run() -> T:
        service = build_service(Settings.from_env(storage=storage_url))
        await service.open()
        try:
            return await job(service)
        finally:
            await service.close()
    return asyncio.run(run())


def _verify(args: argparse.Namespace) -> int:
    verdict = _with_service(args.storage, lambda s: chain.verify(s.storage))
    if verdict.broken:
        print(f"audit chain broken: {verdict.broken} ({verdict.checked} links hold before it)")
        return 1
    seq, digest = verdict.head
    print(f"audit chain verified: {verdict.checked} links; head {seq} SHA-256 {digest or '-'}")
    return 0


def _day_ms(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _export(args: argparse.Namespace) -> int:
    try:
        start = _day_ms(args.start) if args.start else 0
        end = _day_ms(args.end) if args.end else 2**62
    except ValueError as error:
        print(f"alliance-fhir: {error}")
        return 2
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        count = _with_service(args.storage, lambda s: chain.export(s.storage, start, end,
                                                                   out.write))
    finally:
        if args.out:
            out.close()
    print(f"exported {count} AuditEvents", file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace) -> int:
    settings = Settings.from_env(storage=args.storage)
    days = args.days if args.days is not None else settings.audit_retention_days
    removed = _with_service(args.storage, lambda s: chain.purge(s, days))
    print(f"removed {removed} AuditEvents older than {days} days")
    return 0


def add_audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify, export or purge the audit trail")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="recompute the audit chain; name the first "
                                               "broken link (exit 1)")
    verify.set_defaults(run=_verify)
    export = actions.add_parser("export", help="AuditEvents of a time range as NDJSON")
    export.add_argument("--from", dest="start", help="first instant or day (ISO 8601)")
    export.add_argument("--to", dest="end", help="end instant or day, excluded (ISO 8601)")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(run=_export)
    purge = actions.add_parser("purge", help="remove AuditEvents past retention, keeping "
                                             "the chain verifiable")
    purge.add_argument("--days", type=int,
                       help="retention in days (FHIR_AUDIT_RETENTION_DAYS, default 183)")
    purge.set_defaults(run=_purge)
    for action in (verify, export, purge):
        action.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE)")
