"""The audit chain: every AuditEvent carries its sequence number and the SHA-256 of the
previous one's stored bytes (extensions ``audit-sequence``, ``audit-previous-hash``), and
storage keeps the SHA-256 of each. ``verify`` recomputes the chain and names the first
broken link; ``export`` writes a time range as NDJSON; ``purge`` removes what is past
retention, after an anchor (an AuditEvent of the purge, and a record of the last link
removed) that keeps what remains verifiable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server import jsonbytes
from fhir_server.audit.events import REST, SUCCESS, audit_event, server_agent
from fhir_server.core.service import FhirService
from fhir_server.core.versioning import CHAIN_PREVIOUS, CHAIN_SEQUENCE
from fhir_server.storage.port import ChainLink, Storage

ANCHOR = ("audit-anchor", "latest")  # record: the last link a purge removed
BATCH = 1000


@dataclass(frozen=True, slots=True)
class Verdict:
    checked: int
    head: tuple[int, str]  # sequence and hash of the newest link
    broken: str = ""  # the first broken link, said in words; empty: the chain holds


async def links(storage: Storage) -> AsyncIterator[ChainLink]:
    after = 0
    while True:
        batch = await storage.chain(after, BATCH)
        for link in batch:
            yield link
        if len(batch) < BATCH:
            return
        after = batch[-1].seq


async def anchor(storage: Storage) -> tuple[int, str]:
    """The last link removed by a purge ((0, "") before any)."""
    stored = await storage.get_record(*ANCHOR)
    if stored is None:
        return 0, ""
    value = orjson.loads(stored)
    return int(value["seq"]), str(value["hash"])


def _linked(content: bytes) -> tuple[Any, Any]:
    extensions = orjson.loads(content).get("extension") or []
    found = {e.get("url"): e for e in extensions if isinstance(e, dict)}
    return (found.get(CHAIN_SEQUENCE, {}).get("valueInteger"),
            found.get(CHAIN_PREVIOUS, {}).get("valueString", ""))


async def verify(storage: Storage) -> Verdict:
    """Recompute every link, oldest first; the first that does not hold is named."""
    seq, previous = await anchor(storage)
    checked = 0
    floor = seq
    async for link in links(storage):
        if link.seq <= floor:  # removed by a purge that was cut off: not the chain's any more
            continue
        where = f"link {link.seq} (AuditEvent/{link.id})"
        if link.seq != seq + 1:
            return Verdict(checked, (seq, previous), f"links {seq + 1}–{link.seq - 1} are "
                                                     "missing: removed outside a purge")
        if not link.content:
            return Verdict(checked, (seq, previous), f"{where}: its AuditEvent is gone")
        digest = hashlib.sha256(link.content).hexdigest()
        if digest != link.hash:
            return Verdict(checked, (seq, previous), f"{where}: its stored bytes were "
                                                     "changed after it was written")
        try:
            number, before = _linked(link.content)
        except (orjson.JSONDecodeError, AttributeError):
            number, before = None, None
        if number != link.seq or before != previous:
            return Verdict(checked, (seq, previous), f"{where} does not name link "
                                                     f"{seq} as the one before it")
        seq, previous, checked = link.seq, digest, checked + 1
    return Verdict(checked, (seq, previous))


async def export(storage: Storage, start_ms: int, end_ms: int,
                 write: Callable[[bytes], Any]) -> int:
    """The AuditEvents recorded in ``[start_ms, end_ms)``, one stored JSON per line."""
    count = 0
    async for link in links(storage):
        recorded = _recorded_ms(link.content)
        if recorded is not None and start_ms <= recorded < end_ms:
            write(link.content + b"\n")
            count += 1
    return count


async def purge(service: FhirService, retention_days: int,
                now: dt.datetime | None = None) -> int:
    """Remove the AuditEvents recorded more than ``retention_days`` ago (an unbroken
    prefix of the chain), after storing the anchor that keeps the rest verifiable: the
    purge's own AuditEvent and the record of the last link removed."""
    storage = service.storage
    cutoff = int(((now or dt.datetime.now(dt.UTC))
                  - dt.timedelta(days=retention_days)).timestamp() * 1000)
    last: ChainLink | None = None
    async for link in links(storage):
        recorded = _recorded_ms(link.content)
        if recorded is None or recorded >= cutoff:
            break
        last = link
    if last is None:
        return 0
    removed = last.seq - (await anchor(storage))[0]
    await service.record_all([audit_event(
        REST, "D", SUCCESS, f"audit purge: {removed} AuditEvents recorded before "
        f"{_instant(cutoff)} removed (retention {retention_days} days); links up to "
        f"{last.seq} (SHA-256 {last.hash})", [server_agent()])])
    await storage.put_record(*ANCHOR, jsonbytes.dumps({"seq": last.seq, "hash": last.hash}))
    return await storage.purge_chain(last.seq)


def _recorded_ms(content: bytes) -> int | None:
    try:
        recorded = orjson.loads(content).get("recorded")
        return int(dt.datetime.fromisoformat(recorded).timestamp() * 1000)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


def _instant(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")
