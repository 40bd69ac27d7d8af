"""Which active Subscriptions a batch of writes triggers.

The writes come from history (every version in commit order, ``Storage.versions``). For
each Subscription on a written type, one search runs its criteria with the written ids
(``_id``) and, when it has an owner, that user's gate (tiers as they are now): a subscriber
is told only of what they could read. Criteria of equalities on tokens and references alone
(``Task?owner=…&status=requested``), without an owner, are decided on the written versions'
index rows, without a search: a resource is judged by the last version the batch holds.
Searched, it is judged as it is when the batch is processed (normally milliseconds after
its commit): a version superseded by then is judged by its successor. Deletions trigger
nothing (a deleted resource matches no search); AuditEvents neither (their index rows are
written later).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fhir_server import jsonbytes
from fhir_server.core.gate import Gate
from fhir_server.core.service import FhirService
from fhir_server.core.subscription_rules import OWNER, headers_of, parse_criteria
from fhir_server.search.extract import IndexRows
from fhir_server.search.plan import TABLES, Cmp, IdMatch, IndexMatch, Node, Query
from fhir_server.storage.port import HistoryEntry, Match

GateSource = Callable[[str], Awaitable[Gate | None]]  # owner "Type/id" -> their gate
MAX_SUBSCRIPTIONS = 10_000
UNWATCHED = ("AuditEvent",)


@dataclass(frozen=True, slots=True)
class Active:
    """An active Subscription, ready to evaluate and deliver."""

    id: str
    resource_type: str
    where: tuple[Node, ...]
    channel: str
    endpoint: str
    payload: str | None
    headers: tuple[tuple[str, str], ...]
    owner: str | None


@dataclass(frozen=True, slots=True)
class Hit:
    """A notification due: a Subscription and the resource that triggered it."""

    subscription: Active
    resource_type: str
    id: str


class Matcher:
    """Evaluates Subscriptions over batches of writes."""

    def __init__(self, service: FhirService, gates: GateSource | None = None) -> None:
        self.service, self.gates = service, gates
        self._screened: tuple[tuple[Active, ...], Screen] | None = None
        self._parsed: tuple[int, dict[str, tuple[bytes, Active | None]]] = (-1, {})

    async def active(self) -> list[Active]:
        """The active Subscriptions (those whose criteria no longer parse are skipped);
        each version is read once (kept by its stored bytes while the search parameters
        stay the same)."""
        service = self.service
        if self._parsed[0] != service.search_generation:
            self._parsed = (service.search_generation, {})
        known = self._parsed[1]
        status = service.searcher.parse(("Subscription",), [("status", "active")]).query
        page = await service.storage.search(Query(("Subscription",), status.where,
                                                  count=MAX_SUBSCRIPTIONS))
        found = []
        for match in page.matches:
            kept = known.get(match.id)
            if kept is None or kept[0] != match.content:
                kept = known[match.id] = (match.content, self._active(match))
            if kept[1] is not None:
                found.append(kept[1])
        for gone in known.keys() - {m.id for m in page.matches}:
            del known[gone]
        return found

    def _active(self, match: Match) -> Active | None:
        service = self.service
        resource = jsonbytes.loads(match.content)
        criteria = str(resource.get("criteria", ""))
        try:
            query = parse_criteria(service.searcher, criteria, service.registry.is_supported)
        except Exception:  # (a parameter removed since: the Subscription waits)
            return None
        channel = resource.get("channel") or {}
        owner = next((str((e.get("valueReference") or {}).get("reference"))
                      for e in resource.get("extension") or () if e.get("url") == OWNER), None)
        return Active(match.id, query.types[0], query.where, str(channel.get("type")),
                      str(channel.get("endpoint") or ""), channel.get("payload"),
                      tuple(headers_of(resource)), owner)

    async def hits(self, entries: list[HistoryEntry], subscriptions: list[Active]) -> list[Hit]:
        screen = self._screen(subscriptions)
        written: dict[str, dict[str, IndexRows]] = {}
        for entry in entries:  # the last version of each, with the index rows checked
            stored = entry.version
            checked = screen.checked.get(stored.resource_type)
            if checked is not None and stored.resource_type not in UNWATCHED:
                kept = written.setdefault(stored.resource_type, {})
                kept.pop(stored.id, None)
                if entry.method != "DELETE":
                    kept[stored.id] = self.service.indexer.rows(
                        jsonbytes.loads(stored.content), checked)
        triggered: dict[str, list[str]] = {}  # Subscription id -> the ids it may match
        for rtype, resources in written.items():
            for id, rows in resources.items():
                for subscription in screen.candidates(rtype, rows):
                    if might_match(subscription.where, rows):
                        triggered.setdefault(subscription.id, []).append(id)
        found = []
        for subscription in subscriptions:
            ids = triggered.get(subscription.id)
            if not ids:
                continue
            if subscription.owner is None and decided(subscription.where):
                found += [Hit(subscription, subscription.resource_type, id) for id in ids]
                continue  # (the rows answered exactly: no search)
            where = (*subscription.where, IdMatch(tuple(sorted(ids))))
            if subscription.owner and self.gates is not None:
                gate = await self.gates(subscription.owner)
                if gate is None:
                    continue
                where += gate.criteria((subscription.resource_type,))
            page = await self.service.storage.search(
                Query((subscription.resource_type,), where, count=len(ids)))
            found += [Hit(subscription, subscription.resource_type, m.id) for m in page.matches]
        return found

    def _screen(self, subscriptions: list[Active]) -> Screen:
        """The screen of these Subscriptions (built again unless they are the very same
        objects as last time)."""
        kept = self._screened
        if kept is None or len(kept[0]) != len(subscriptions) \
                or any(a is not b for a, b in zip(kept[0], subscriptions, strict=True)):
            kept = self._screened = (tuple(subscriptions), Screen(subscriptions))
        return kept[1]


class Screen:
    """Finds the Subscriptions a written resource may trigger without trying each one: a
    Subscription with an equality on a token or a reference (``owner=Organization/x``) is
    filed under that value, and a resource's rows look their values up; the others are
    tried on every write of their type."""

    def __init__(self, subscriptions: list[Active]) -> None:
        self.checked: dict[str, frozenset[str]] = {}  # type -> the parameters read
        self.filed: dict[tuple[str, tuple[tuple[str, object], ...]], list[Active]] = {}
        self.shapes: dict[str, dict[tuple[str, str], set[tuple[str, ...]]]] = {}
        self.always: dict[str, list[Active]] = {}
        for subscription in subscriptions:
            rtype = subscription.resource_type
            self.checked[rtype] = self.checked.get(rtype, frozenset()) | {
                n.param for n in subscription.where if isinstance(n, IndexMatch)}
            probe = _probe(subscription.where)
            if probe is None:
                self.always.setdefault(rtype, []).append(subscription)
                continue
            table, param, pairs = probe
            self.shapes.setdefault(rtype, {}).setdefault((table, param), set()).add(
                tuple(column for column, _ in pairs))
            self.filed.setdefault((param, pairs), []).append(subscription)

    def candidates(self, rtype: str, rows: IndexRows) -> list[Active]:
        found = list(self.always.get(rtype, ()))
        for (table, param), shapes in self.shapes.get(rtype, {}).items():
            columns = TABLES[table]
            for key, row in rows.get(table, ()):
                if key != param:
                    continue
                value = dict(zip(columns, row, strict=True))
                for shape in shapes:
                    found += self.filed.get((param, tuple((c, value[c]) for c in shape)), ())
        return list({id(s): s for s in found}.values())


def _probe(where: tuple[Node, ...]) -> tuple[str, str, tuple[tuple[str, object], ...]] | None:
    """The first equality of criteria on one token or reference value, as (table,
    parameter, sorted (column, value) pairs)."""
    for node in where:
        if isinstance(node, IndexMatch) and not node.negate and len(node.any_of) == 1 \
                and node.table in ("token", "reference") \
                and all(cmp.op == "=" for cmp in node.any_of[0]):
            return node.table, node.param, tuple(sorted(
                (cmp.column, cmp.value) for cmp in node.any_of[0]))
    return None


def might_match(where: tuple[Node, ...], rows: IndexRows) -> bool:
    """Whether a resource with these index rows can meet the criteria: its equality
    criteria on tokens and references are checked on the rows (the usual Subscription,
    ``Task?owner=…&status=…``); anything else is left to the search. A cheap filter, so
    that a write runs the searches of the few Subscriptions it may trigger, not of all."""
    for node in where:
        if not isinstance(node, IndexMatch) or node.negate \
                or node.table not in ("token", "reference"):
            continue
        columns = TABLES[node.table]
        values = [dict(zip(columns, row, strict=True)) for key, row in rows.get(node.table, ())
                  if key == node.param]
        if not any(all(_holds(cmp, value) for cmp in conjunction)
                   for conjunction in node.any_of for value in values):
            return False
    return True


def decided(where: tuple[Node, ...]) -> bool:
    """Whether ``might_match`` answers exactly for these criteria: each an equality (or
    list) on token or reference rows, none negated."""
    return all(isinstance(node, IndexMatch) and not node.negate
               and node.table in ("token", "reference")
               and all(cmp.op in ("=", "in") for conjunction in node.any_of
                       for cmp in conjunction) for node in where)


def _holds(cmp: Cmp, row: dict[str, object]) -> bool:
    if cmp.op == "=":
        return bool(row.get(cmp.column) == cmp.value)
    if cmp.op == "in":
        return bool(row.get(cmp.column) in cmp.value)
    return True  # (another operator: the search decides)
