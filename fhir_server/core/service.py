"""The FHIR interactions over the storage port, knowing neither HTTP nor databases.

One method per interaction of https://hl7.org/fhir/R4/http.html. Writes are prepared
(validated, references found, a renderer built) as :class:`Write` values, so a single
request and a transaction Bundle share the same preparation and commit path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import orjson

from fhir_server import jsonbytes
from fhir_server.config import Settings
from fhir_server.core.conditional import Resolution, attempts
from fhir_server.core.erasure import erasure_record
from fhir_server.core.errors import (
    Conflict,
    FhirError,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unprocessable,
)
from fhir_server.core.gate import Gate, current_audit, current_gate
from fhir_server.core.ids import Uuid7
from fhir_server.core.patch import Patcher
from fhir_server.core.references import local_references
from fhir_server.core.referral_flow import Fill, ReferralRules, with_accepted
from fhir_server.core.referral_ledger import ReferralLedger
from fhir_server.core.referral_tier import referral_issues
from fhir_server.core.registry import ResourceRegistry
from fhir_server.core.search import Searcher
from fhir_server.core.subscription_rules import Probe, SubscriptionRules, tcp_probe
from fhir_server.core.versioning import format_instant, linked_renderer, renderer
from fhir_server.outcome import Issue, has_errors
from fhir_server.package import AlliancePackage
from fhir_server.search.extract import Indexer, IndexRows
from fhir_server.search.parse import SearchParser
from fhir_server.search.plan import IdMatch, Node, Query
from fhir_server.search.registry import SearchRegistry
from fhir_server.search.types.base import Context as SearchContext
from fhir_server.search.ucum import warm_up
from fhir_server.storage.port import (
    AlreadyExists,
    CommitOptions,
    Condition,
    DuplicateIdentifier,
    ExpungeTooLarge,
    HistoryPage,
    HistoryQuery,
    IntegrityError,
    ResourceTooLarge,
    Storage,
    StoredVersion,
    VersionConflict,
    Write,
)
from fhir_server.types import Resource
from fhir_server.validation.check import Checks, check_resource
from fhir_server.validation.structure import StructureValidator

IdSource = Callable[[], str]
PATCH_RETRIES = 5
MAX_VERSION = 2**63 - 1  # SQLite's INTEGER; a larger number names no version
# package resources the alliance edits (the referral grade bands): installed once, kept
EDITED_LOCALLY = ("Measure",)
# the part of the server's AuditEvents that one request's events share
EVENT_FIXED = ("type", "subtype", "action", "outcome", "agent", "source", "purposeOfEvent")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated write, ready to commit alone or inside a transaction."""

    write: Write
    resource: Resource | None


class FhirService:
    """Interactions on resources; wired in ``app.py``."""

    def __init__(self, storage: Storage, settings: Settings,
                 registry: ResourceRegistry | None = None,
                 validator: StructureValidator | None = None,
                 new_id: IdSource | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.registry = registry or ResourceRegistry()
        self.validator = validator or StructureValidator()
        self.new_id = new_id or Uuid7()
        self.unique_systems = settings.unique_systems
        self.options = CommitOptions(settings.check_references,
                                     settings.allow_referenced_delete)
        self.package = AlliancePackage.load(settings)
        self.checks = replace(Checks.from_package(self.package.profiles,
                                                  self.package.terminology,
                                                  settings.required_profile_types,
                                                  settings.allow_any_extension),
                              structure=self.validator)
        self._secret = b""
        self.probe: Probe = tcp_probe  # whether a rest-hook endpoint answers
        self.committed: list[Callable[[], None]] = []  # called after every commit
        self.search_generation = 0
        self.ready = False  # opened, migrated and the alliance package installed
        self._use_search_parameters([])

    def _use_search_parameters(self, stored: list[Resource]) -> None:
        """(Re)build the search registry: R4, then the alliance package, then stored ones."""
        registry = SearchRegistry(self.registry.ordered)
        for resource in [*self.package.of_type("SearchParameter"), *stored]:
            registry.add_resource(resource)
        context = SearchContext(self.settings.zone)
        self.search_registry = registry
        self.search_generation += 1  # documents built from the registry are stale
        self.indexer = Indexer(registry, context)
        self.ledger = ReferralLedger(self.storage, self.indexer, self._criteria,
                                     self.settings.zone)
        self._records: tuple[Indexer, dict[bytes, IndexRows]] = (self.indexer, {})
        self.storage.use_indexer(self.stored_rows)
        self.searcher = Searcher(self.storage, registry, SearchParser(
            registry, context, self.settings.default_count, self.settings.max_count,
            self.settings.include_limit))
        self.searcher.use_secret(self._secret)

    def _criteria(self, rtype: str, pairs: list[tuple[str, str]]) -> tuple[Node, ...]:
        """The plan criteria of a server-made search (one definition per parameter)."""
        return self.searcher.parse((rtype,), pairs, strict=True).query.where

    async def load_search_parameters(self) -> None:
        """Learn the SearchParameter resources stored on the server."""
        stored = await self.storage.search(Query(("SearchParameter",), count=100_000))
        self._use_search_parameters([orjson.loads(m.content) for m in stored.matches])

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open storage; learn stored SearchParameters; reindex if the schema asks."""
        warm_up()  # UCUM's registry: built in the background while the rest opens
        await self.storage.open()
        self._secret = await self.storage.secret()
        await self.load_search_parameters()
        if await self.storage.pending_reindex():
            await self.reindex()
        await self.install_package()
        await self.ledger.ensure()
        self.ready = True

    async def install_package(self) -> int:
        """Write every resource of the alliance package that storage lacks or holds in
        another form (a new package version; ``EDITED_LOCALLY`` types only when missing), in
        one commit; return how many."""
        changed = []
        for resource in self.package.marked():
            rtype, id = resource["resourceType"], resource["id"]
            current = await self.storage.read(rtype, id)
            if current is not None and rtype in EDITED_LOCALLY:
                continue  # the alliance office's edits stand
            if current is None or current.deleted or _unversioned(current.content) != resource:
                changed.append(self.prepare_update(rtype, id, resource))
        if changed:
            await self.commit(changed)
        return len(changed)

    async def close(self) -> None:
        self.ready = False
        await self.storage.close()

    async def reindex(self, batch_size: int = 500) -> int:
        """Rebuild every current resource's index rows (``$reindex``), and the referral
        ledger, read through them; return how many resources."""
        done, after = 0, 0
        while True:
            last, count = await self.storage.reindex_batch(
                after, batch_size, lambda content: self.indexer.rows(jsonbytes.loads(content)))
            done += count
            if last is None:
                await self.ledger.ensure(rebuild=True)
                return done
            after = last

    # -- checks ------------------------------------------------------------------------

    def check_type(self, resource_type: str) -> None:
        if not self.registry.is_supported(resource_type):
            raise NotFound(f"Resource type '{resource_type}' is not supported by this server",
                           resource_type)

    def check(self, resource: Resource, resource_type: str | None = None) -> list[Issue]:
        """Every issue of a resource: R4 structure, then (if sound) the business rules."""
        return check_resource(self.checks, resource, resource_type)

    def validate(self, resource: Resource, resource_type: str, prefix: str = "") -> None:
        """Raise a 400 listing structure errors, or a 422 listing business-rule errors."""
        issues = self.validator.validate(resource, resource_type)
        error: type[FhirError] = FhirError
        if not has_errors(issues):
            issues, error = self.checks.rules(resource), Unprocessable
        if has_errors(issues):
            if prefix:
                issues = [Issue(i.code, i.diagnostics, f"{prefix}.{i.expression}"
                                if i.expression else prefix, i.severity) for i in issues]
            raise error(issues)

    # -- reads -------------------------------------------------------------------------

    async def read(self, resource_type: str, id: str) -> StoredVersion:
        self.check_type(resource_type)
        current = await self.storage.read(resource_type, id)
        if current is None or not await self._visible(resource_type, id):
            raise NotFound(f"{resource_type}/{id} is not known", f"{resource_type}/{id}")
        if current.deleted:
            raise Gone(f"{resource_type}/{id} was deleted in version {current.version}",
                       f"{resource_type}/{id}")
        return current

    async def vread(self, resource_type: str, id: str, version: str) -> StoredVersion:
        self.check_type(resource_type)
        if not version.isdigit() or int(version) > MAX_VERSION:
            raise NotFound(f"Version {version!r} of {resource_type}/{id} is not known")
        found = await self.storage.vread(resource_type, id, int(version))
        if found is None or not await self._visible(resource_type, id):
            raise NotFound(f"{resource_type}/{id}/_history/{version} is not known")
        if found.deleted:
            raise Gone(f"{resource_type}/{id} version {version} is a deletion")
        return found

    async def history(self, query: HistoryQuery) -> HistoryPage:
        if query.resource_type:
            self.check_type(query.resource_type)
        gate = current_gate.get()
        if query.id is not None and not await self._visible(str(query.resource_type), query.id):
            raise NotFound(f"{query.resource_type}/{query.id} is not known",
                           f"{query.resource_type}/{query.id}")
        if query.id is None and gate is not None:  # the versions of what the user may see
            query = replace(query, visible=gate.criteria(
                (query.resource_type,) if query.resource_type else ()))
        return await self.storage.history(query)

    async def _visible(self, resource_type: str, id: str) -> bool:
        """Whether the request's gate lets this resource's current version through (a
        search of the one id under the gate's criteria; always, without a gate)."""
        gate = current_gate.get()
        if gate is None:
            return True
        known = gate.admits(resource_type, id)
        if known is not None:
            return known
        criteria = gate.criteria((resource_type,))
        if not criteria:
            return True
        page = await self.storage.search(Query((resource_type,), (IdMatch((id,)), *criteria),
                                               count=1))
        return bool(page.matches)

    # -- preparing writes ----------------------------------------------------------------

    def prepare_create(self, resource_type: str, resource: Resource, prefix: str = "",
                       id: str | None = None) -> Prepared:
        """Create with a server-assigned id (any id in the body is ignored, as the spec says)."""
        self.check_type(resource_type)
        resource["id"] = id or self.new_id()
        self.validate(resource, resource_type, prefix)
        return Prepared(self._write("create", resource, None, prefix), resource)

    def prepare_update(self, resource_type: str, id: str, resource: Resource,
                       if_match: int | None = None, prefix: str = "") -> Prepared:
        self.check_type(resource_type)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError("The resource must carry an id for update",
                            f"{prefix or resource_type}.id")
        if body_id != id:
            raise FhirError(f"The resource id {body_id!r} does not match the URL id {id!r}",
                            f"{prefix or resource_type}.id")
        self.validate(resource, resource_type, prefix)
        return Prepared(self._write("update", resource, if_match, prefix), resource)

    def prepare_delete(self, resource_type: str, id: str,
                       if_match: int | None = None) -> Prepared:
        self.check_type(resource_type)
        return Prepared(Write("delete", resource_type, id, if_match=if_match), None)

    def _write(self, kind: str, resource: Resource, if_match: int | None = None,
               prefix: str = "") -> Write:
        """The write of a validated resource; ``prefix`` names where it stands in a Bundle
        (``Bundle.entry[2].resource``), for the errors of its references."""
        refs = local_references(resource, self.registry.is_supported, prefix)
        return Write(kind, resource["resourceType"], resource["id"],  # type: ignore[arg-type]
                     renderer(resource), if_match, refs, self.indexer.rows(resource),
                     kind == "update" and self.settings.skip_unchanged_updates,
                     self._unique_identifiers(resource))

    def _unique_identifiers(self, resource: Resource) -> tuple[tuple[str, str], ...]:
        identifiers = resource.get("identifier")
        if not self.unique_systems or not isinstance(identifiers, list):
            return ()
        return tuple((i["system"], i["value"]) for i in identifiers
                     if isinstance(i, dict) and i.get("system") in self.unique_systems
                     and isinstance(i.get("value"), str))

    # -- committing --------------------------------------------------------------------

    async def commit(self, prepared: Sequence[Prepared], options: CommitOptions | None = None,
                     where: dict[tuple[str, str], str] | None = None,
                     conditions: Sequence[Condition] = (),
                     gated: bool = True) -> list[StoredVersion]:
        """Commit prepared writes atomically; port errors become FhirErrors (``where``
        names the place of each written resource in a Bundle, for their expressions),
        except ConditionChanged, which asks the caller to resolve its conditions again.
        Writes the request's gate refuses are Forbidden (``gated`` False: the server's
        own records)."""
        await self._check_referrals(prepared)
        gate, audit = current_gate.get(), current_audit.get()
        asked = len(prepared)  # the answer: these writes' versions, not the server's own
        prepared, follows, held = await self._referral_moves(prepared, gate, where or {})
        if gated:  # (the server's own writes: a Subscription set in error)
            prepared = await self._subscriptions(prepared, gate, where or {})
        for p in prepared if gated and self.settings.auth != "none" else ():
            if p.write.resource_type == "AuditEvent":
                raise Forbidden("AuditEvents are written by the server only: they are never "
                                "created, changed or deleted through the API",
                                f"AuditEvent/{p.write.id}")
        if gate is not None and gated:
            await gate.check_writes([(p.write.resource_type, p.write.id, p.resource)
                                     for p in prepared])
        prepared = await self._with_ledger([*prepared, *follows])  # (follows: the server's,
        # not checked against the user's tier)
        if audit is not None and gated:
            prepared = [*prepared, self.prepare_record(audit.written(
                [(p.write.kind, p.write.resource_type, p.write.id) for p in prepared]))]
        places = where or {}

        def place(rtype: str, id: str) -> str:
            return places.get((rtype, id), f"{rtype}/{id}")

        try:
            stored = await self.storage.commit([p.write for p in prepared],
                                               options or self.options, conditions)
            for listener in self.committed:
                listener()
            return stored[:asked]
        except VersionConflict as error:
            if (error.resource_type, error.id) in held:
                raise Conflict(f"{error.resource_type}/{error.id} changed while this request "
                               "moved it; read it again and retry / 转诊任务已被他人修改，请重试",
                               place(error.resource_type, error.id)) from None
            raise PreconditionFailed(
                f"{error.resource_type}/{error.id}: If-Match expects version {error.expected}"
                f" but the current version is {error.actual or 'none'}",
                place(error.resource_type, error.id)) from None
        except AlreadyExists as error:
            raise Conflict(str(error), place(error.resource_type, error.id)) from None
        except DuplicateIdentifier as error:
            at = places.get((error.resource_type, error.id), error.resource_type)
            holder_type, _, holder_id = error.holder.partition("/")
            holder = error.holder if gate is None or gate.admits(holder_type, holder_id) \
                else "another resource"  # one the user may not see: not named
            raise Conflict(f"{error.resource_type}/{error.id}: the identifier "
                           f"{error.system}|{error.value} already belongs to {holder} "
                           "/ 标识符已被占用", f"{at}.identifier") from None
        except IntegrityError as error:
            raise _integrity_error(error, place) from None
        except ResourceTooLarge as error:
            raise PayloadTooLarge(f"{error}: split it (a Binary's data can live outside the "
                                  "server, in an attachment's url)",
                                  place(error.resource_type, error.id)) from None

    async def _with_ledger(self, prepared: list[Prepared]) -> list[Prepared]:
        """The writes, the last referral write carrying the referral ledger's changes
        (core/referral_ledger.py), kept in the same transaction."""
        last = next((i for i in range(len(prepared) - 1, -1, -1)
                     if prepared[i].write.resource_type in ("ServiceRequest", "Task")), None)
        if last is None:
            return prepared
        changes = await self.ledger.changes([
            (p.write.resource_type, p.write.id, p.resource) for p in prepared
            if p.write.resource_type in ("ServiceRequest", "Task")])
        moved = prepared[last]
        prepared[last] = Prepared(replace(moved.write, records=tuple(changes)), moved.resource)
        return prepared

    async def _referral_moves(self, prepared: Sequence[Prepared], gate: Gate | None,
                              places: dict[tuple[str, str], str]
                              ) -> tuple[list[Prepared], list[Prepared], set[tuple[str, str]]]:
        """Judge the referral Tasks written (core/referral_flow.py): refuse illegal moves
        (422, or 403 for the wrong side) and hold each moved Task to the version it moved
        from. Returns the writes, the ServiceRequests that follow, and the held (type, id)
        pairs, whose version conflicts are concurrent moves (409)."""
        tasks = [p for p in prepared if p.resource is not None
                 and p.write.resource_type == "Task"]
        if not tasks:
            return list(prepared), [], set()
        written = {f"{p.write.resource_type}/{p.write.id}": p.resource
                   for p in prepared if p.resource is not None}
        rules = ReferralRules(self._current, written)
        verdict = await rules.judge(
            [(p.resource, places.get(("Task", p.write.id), "Task"))
             for p in tasks if p.resource is not None],
            gate.actor if gate is not None else None)
        if verdict.issues:
            forbidden = [i for i in verdict.issues if i.code == "forbidden"]
            raise Forbidden(forbidden) if forbidden else Unprocessable(verdict.issues)
        filled = {id: self._filled(p, verdict.fills[id], places) for p in tasks
                  if (id := p.write.id) in verdict.fills}
        tasks = [filled.get(p.write.id, p) for p in tasks]
        prepared = [filled.get(p.write.id, p) if p.write.resource_type == "Task" else p
                    for p in prepared]
        implicit = {p.write.id for p in tasks
                    if p.write.if_match is None and p.write.id in verdict.held}
        held = {("Task", id) for id in implicit} | {
            ("ServiceRequest", f.referral["id"]) for f in verdict.follows.values()}
        moved = [replace(p, write=replace(p.write, if_match=verdict.held[p.write.id]))
                 if p.write.resource_type == "Task" and p.write.id in implicit else p
                 for p in prepared]
        follows = [self.prepare_update("ServiceRequest", f.referral["id"], f.referral,
                                       f.version) for f in verdict.follows.values()]
        return moved, follows, held

    async def _subscriptions(self, prepared: list[Prepared], gate: Gate | None,
                             places: dict[tuple[str, str], str]) -> list[Prepared]:
        """Check each Subscription written (core/subscription_rules.py) and store it as
        the server keeps it: active once accepted, with its owner."""
        if not any(p.write.resource_type == "Subscription" and p.resource is not None
                   for p in prepared):
            return prepared
        rules = SubscriptionRules(self.searcher, self.registry.is_supported, self.probe)
        kept = []
        for p in prepared:
            if p.write.resource_type == "Subscription" and p.resource is not None:
                place = places.get(("Subscription", p.write.id), "Subscription")
                stored = await self._current(f"Subscription/{p.write.id}")
                resource = await rules.checked(p.resource, stored and stored[0], place,
                                               gate.actor if gate is not None else None)
                p = Prepared(self._write(p.write.kind, resource, p.write.if_match,
                                         "" if place == "Subscription" else place), resource)
            kept.append(p)
        return kept

    def _filled(self, task: Prepared, fill: Fill,
                places: dict[tuple[str, str], str]) -> Prepared:
        """A referral Task's write with what the server adds: its referral's priority,
        its acceptance time (kept, or the time of this very version: its
        ``meta.lastUpdated``)."""
        assert task.resource is not None
        resource = task.resource
        if fill.priority:
            resource = {**resource, "priority": fill.priority}
        now = int(time.time() * 1000) if fill.accepted_now else None
        moment = format_instant(now) if now is not None else fill.accepted
        if moment:
            resource = with_accepted(resource, moment)
        write = self._write(task.write.kind, resource, task.write.if_match,
                            places.get(("Task", task.write.id), ""))
        return Prepared(replace(write, updated_ms=now), resource)

    async def _current(self, reference: str) -> tuple[Resource, int] | None:
        """The current content and version of ``Type/id`` (None: unknown or deleted)."""
        rtype, _, id = reference.partition("/")
        if not self.registry.is_supported(rtype) or "/" in id:
            return None
        found = await self.storage.read(rtype, id)
        if found is None or found.deleted:
            return None
        return jsonbytes.loads(found.content), found.version

    async def _check_referrals(self, prepared: Sequence[Prepared]) -> None:
        """alliance-ref-2 (referral direction against the tiers), resolving the requester and
        performer among the writes themselves first, then in storage (422 when broken)."""
        referrals = [p.resource for p in prepared if p.resource is not None
                     and p.resource["resourceType"] == "ServiceRequest"]
        if not referrals:  # most commits: no need to index what they write
            return
        written = {f"{p.resource['resourceType']}/{p.resource['id']}": p.resource
                   for p in prepared if p.resource is not None}

        async def resolve(reference: str) -> Resource | None:
            rtype, _, id = reference.partition("/")
            if reference in written or not self.registry.is_supported(rtype) or "/" in id:
                return written.get(reference)
            found = await self.storage.read(rtype, id)
            return None if found is None or found.deleted else jsonbytes.loads(found.content)

        issues = [issue for referral in referrals
                  for issue in await referral_issues(referral, resolve)]
        if issues:
            raise Unprocessable(issues)

    async def record_all(self, resources: list[Resource]) -> list[StoredVersion]:
        """Store, in one commit, resources the server itself built (AuditEvents): their
        shape is fixed by code, and the tests validate it, so they are not validated again
        on every write (that took half the cost of issuing a token). They pass none of the
        rules of clinical writes, and wake no one: the Subscription notifier finds them
        when it next polls."""
        return await self.storage.commit([self.prepare_record(r).write for r in resources],
                                         self.options)

    def prepare_record(self, event: Resource) -> Prepared:
        """An AuditEvent of the server's, as the next link of the audit chain. Its
        references are not held for referential integrity (the trail outlives what it
        names), and its index rows are written later (``index_deferred``): a request's
        audit costs one stored version, not twenty index rows."""
        event["id"] = self.new_id()
        write = Write("create", "AuditEvent", event["id"], link=linked_renderer(event),
                      index_later=True)
        return Prepared(write, event)

    def stored_rows(self, content: bytes) -> IndexRows:
        """The index rows of a stored version (to reindex, to index later, to remove)."""
        resource = jsonbytes.loads(content)
        if resource.get("resourceType") == "AuditEvent":
            return self._record_rows(resource)
        return self.indexer.rows(resource)

    def _record_rows(self, event: Resource) -> IndexRows:
        """An AuditEvent's index rows: those of its per-request part (who, from where,
        what interaction, with what outcome) extracted once per distinct part, and those
        of the rest (when, which resources) for each event; the two parts share no search
        parameter's sort row, so the union is the rows of the whole."""
        if self._records[0] is not self.indexer:
            self._records = (self.indexer, {})
        fixed = {"resourceType": "AuditEvent",
                 **{k: event[k] for k in EVENT_FIXED if k in event}}
        key = jsonbytes.dumps(fixed)
        rows = self._records[1].get(key)
        if rows is None:
            if len(self._records[1]) >= 1000:
                self._records[1].clear()
            rows = self._records[1][key] = self.indexer.rows(fixed)
        rest = self.indexer.rows({k: v for k, v in event.items() if k not in EVENT_FIXED})
        if {k for k, _ in rows.get("sort", ())} & {k for k, _ in rest.get("sort", ())}:
            return self.indexer.rows(event)
        merged: IndexRows = {table: list(found) for table, found in rows.items()}
        for table, found in rest.items():
            kept = merged.setdefault(table, [])
            kept += [row for row in found if row not in kept]
        return merged

    async def create(self, resource_type: str, resource: Resource) -> StoredVersion:
        [stored] = await self.commit([self.prepare_create(resource_type, resource)])
        return stored

    async def update(self, resource_type: str, id: str, resource: Resource,
                     if_match: int | None = None) -> StoredVersion:
        [stored] = await self.commit([self.prepare_update(resource_type, id, resource,
                                                       if_match)])
        return stored

    async def prepare_patch(self, resource_type: str, id: str, patch: Patcher,
                            if_match: int | None = None, prefix: str = "") -> Prepared:
        """Read the current version, apply the patch, prepare it as a version-checked update."""
        current = await self.read(resource_type, id)
        if if_match is not None and current.version != if_match:
            raise PreconditionFailed(f"{resource_type}/{id}: If-Match expects version "
                                     f"{if_match} but the current version is {current.version}")
        patched = patch(jsonbytes.loads(current.content))
        if not isinstance(patched, dict) or patched.get("resourceType") != resource_type:
            raise FhirError("The patch must not change the resourceType", "resourceType")
        if len(jsonbytes.dumps(patched)) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"The patched resource would exceed "
                                  f"{self.settings.max_body_bytes} bytes", resource_type)
        return self.prepare_update(resource_type, id, patched, current.version, prefix)

    async def patch(self, resource_type: str, id: str, patch: Patcher,
                    if_match: int | None = None,
                    conditions: Sequence[Condition] = ()) -> StoredVersion:
        """Patch; without If-Match a concurrent write is retried, never silently lost."""
        for _ in range(PATCH_RETRIES):
            prepared = await self.prepare_patch(resource_type, id, patch, if_match)
            try:
                [stored] = await self.commit([prepared], conditions=conditions)
                return stored
            except PreconditionFailed:
                if if_match is not None:
                    raise
        raise Conflict(f"{resource_type}/{id} changed during the patch; try again")

    # -- conditional interactions (atomic: see core/conditional.py) ----------------------

    async def conditional_create(self, resource_type: str, resource: Resource,
                                 query: str) -> tuple[StoredVersion, bool]:
        """Create unless ``query`` finds one; (version, created)."""
        async def attempt(found: Resolution) -> tuple[StoredVersion, bool]:
            existing = await found.create_target(resource_type, query)
            if existing is not None:
                return await self.read(resource_type, existing), False
            prepared = self.prepare_create(resource_type, resource)
            [stored] = await self.commit([prepared], conditions=found.held)
            return stored, True
        return await attempts(self, attempt)

    async def conditional_update(self, resource_type: str, query: str, resource: Resource,
                                 if_match: int | None = None) -> StoredVersion:
        body_id = resource.get("id")

        async def attempt(found: Resolution) -> StoredVersion:
            rid = await found.single_target(resource_type, query, "PUT", body_id)
            resource["id"] = rid
            prepared = self.prepare_update(resource_type, rid, resource, if_match)
            [stored] = await self.commit([prepared], conditions=found.held)
            return stored
        return await attempts(self, attempt)

    async def conditional_patch(self, resource_type: str, query: str, patch: Patcher,
                                if_match: int | None = None) -> StoredVersion:
        async def attempt(found: Resolution) -> StoredVersion:
            rid = await found.single_target(resource_type, query, "PATCH")
            return await self.patch(resource_type, rid, patch, if_match, found.held)
        return await attempts(self, attempt)

    async def conditional_delete(self, resource_type: str, query: str) -> list[StoredVersion]:
        async def attempt(found: Resolution) -> list[StoredVersion]:
            ids = await found.delete_targets(resource_type, query)
            return await self.commit([self.prepare_delete(resource_type, i) for i in ids],
                                     conditions=found.held)
        return await attempts(self, attempt)

    async def expunge(self, resource_type: str, id: str, cascade: bool = False,
                      limit: int = 1000) -> list[tuple[str, str]]:
        """Erase a resource and all its versions (and, with ``cascade``, what references
        it), recorded by an AuditEvent in the same transaction; see docs/api/expunge.md."""
        self.check_type(resource_type)
        if resource_type == "AuditEvent" and self.settings.auth != "none":
            raise Forbidden("AuditEvents are never erased through the API: the audit trail "
                            "is purged by retention only (alliance-fhir audit purge)",
                            f"AuditEvent/{id}")

        def record(erased: list[tuple[str, str]]) -> list[Write]:
            return [self.prepare_record(erasure_record(erased)).write]

        referral = await self.ledger.referral_of(resource_type, id)
        try:
            erased = await self.storage.expunge(resource_type, id, cascade, limit, record)
        except IntegrityError as error:
            raise _integrity_error(error, lambda t, i: f"{t}/{i}") from None
        except ExpungeTooLarge as error:
            raise Conflict(f"Erasing {resource_type}/{id} with what references it would erase "
                           f"more than {error.limit} resources", f"{resource_type}/{id}") from None
        if not erased:
            raise NotFound(f"{resource_type}/{id} is not known", f"{resource_type}/{id}")
        await self.ledger.forget(erased, referral)
        return erased

    async def delete(self, resource_type: str, id: str,
                     if_match: int | None = None) -> StoredVersion:
        [stored] = await self.commit([self.prepare_delete(resource_type, id, if_match)])
        return stored


def _unversioned(content: bytes) -> Resource:
    """A stored resource without the ``meta`` elements the server sets."""
    resource: Resource = jsonbytes.loads(content)
    meta = {k: v for k, v in (resource.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated")}
    resource.pop("meta", None)
    return {**resource, "meta": meta} if meta else resource


def _integrity_error(error: IntegrityError, place: Callable[[str, str], str]) -> FhirError:
    if error.referenced:
        issues = [Issue("conflict", f"{t}/{i} is still referenced by {', '.join(by)}",
                        place(t, i)) for t, i, by in error.referenced]
        return Conflict(issues)
    issues = [Issue("not-found", f"The reference {ref.resource_type}/{ref.id} does not "
                    f"resolve to a resource on this server", ref.expression)
              for ref in error.dangling]
    return FhirError(issues)
