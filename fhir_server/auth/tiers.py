"""Access tiers of the alliance's staff ("low rights see their own patients, high rights the
whole alliance"), turned into search-plan criteria.

A user is a PractitionerRole (or a Practitioner). Its tier is the valueCode of the
``access-tier`` extension (``own-patients``, ``organization``, ``alliance``; the configured
default without one). Patient data (the types of the R4 Patient compartment, and types
with a ``patient`` parameter such as Task) is visible only for the user's patients:
- ``own-patients``: patients with a compartment resource that references the user (its
  PractitionerRole or Practitioner) through a parameter of the R4 Practitioner compartment
  or ``requester``, ``performer``, ``owner`` (``Patient.generalPractitioner`` among them);
- ``organization``: the same for the user's organisation, its departments (``partOf``) and
  their PractitionerRoles, plus the patients it manages (``Patient.managingOrganization``);
- ``alliance``: every patient.
Other data (the directory, conformance resources, Medication, Location…) is visible to every
clinical user. Administrators (三员分立, ``admin-role`` codes) see no patient data:
``system-admin`` and ``security-admin`` the rest but AuditEvent, ``audit-admin`` AuditEvent
only. Spec of the compartments: https://hl7.org/fhir/R4/compartmentdefinition.html
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fhir_server import jsonbytes
from fhir_server.config import TIERS
from fhir_server.core.errors import Forbidden
from fhir_server.core.gate import Actor
from fhir_server.core.references import walk_references
from fhir_server.core.service import FhirService
from fhir_server.search.plan import AnyOf, Cmp, Has, IdMatch, IndexMatch, Node, OfType, Query
from fhir_server.search.registry import SearchParam, SearchRegistry
from fhir_server.types import Resource

TIER_URL = "http://alliance-fhir.org/fhir/StructureDefinition/access-tier"
ADMIN_ROLE_SYSTEM = "http://alliance-fhir.org/fhir/CodeSystem/admin-role"
ADMIN_ROLES = ("system-admin", "security-admin", "audit-admin")
ACTOR_PARAMS = ("requester", "performer", "owner")
NOTHING = IdMatch(())  # matches no resource
MAX_PATIENTS = 100_000  # a tier's patients are listed up to this many
MAX_DEPTH = 8  # levels of departments (Organization.partOf) followed
CACHE_SECONDS = 30.0  # a user's patients are listed again after this, or on any write
Loader = Callable[[str], Awaitable[Resource | None]]  # Type/id -> current content


@dataclass(frozen=True, slots=True)
class Patients:
    """A user's patients: ids in order (for plan criteria) and as a set (to look up)."""

    ids: tuple[str, ...]
    set: frozenset[str]

    @classmethod
    def of(cls, ids: tuple[str, ...]) -> Patients:
        return cls(ids, frozenset(ids))


NO_PATIENTS = Patients((), frozenset())


@dataclass(frozen=True, slots=True)
class User:
    """Who a user token names, as its PractitionerRole says."""

    reference: str  # PractitionerRole/x or Practitioner/y
    tier: str
    roles: frozenset[str]  # admin roles
    actors: tuple[str, ...]  # references that stand for the user (Type/id)
    organizations: tuple[str, ...]  # its organisation and departments (organization tier)
    mark: int = 0  # the storage's data mark when this was read (``Storage.data_mark``)
    codes: frozenset[str] = frozenset()  # every code of its PractitionerRole.code
    organization: str | None = None  # its PractitionerRole.organization

    @property
    def admin(self) -> bool:
        return bool(self.roles)


def tier_of(role: Resource, default: str) -> str:
    for extension in role.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == TIER_URL \
                and extension.get("valueCode") in TIERS:
            return str(extension["valueCode"])
    return default


def role_codings(role: Resource) -> list[tuple[str, str]]:
    """(system, code) of each coding of a PractitionerRole's ``code``."""
    return [(str(c.get("system") or ""), str(c["code"])) for concept in role.get("code") or ()
            if isinstance(concept, dict) for c in concept.get("coding") or ()
            if isinstance(c, dict) and isinstance(c.get("code"), str)]


def admin_roles(role: Resource) -> frozenset[str]:
    return frozenset(code for system, code in role_codings(role)
                     if system == ADMIN_ROLE_SYSTEM and code in ADMIN_ROLES)


class PatientData:
    """Which types hold patient data, and the parameters linking them to patients and to
    the people who made them (from the one search parameter registry)."""

    def __init__(self, registry: SearchRegistry) -> None:
        self.registry = registry
        patient = registry.compartments.get("Patient", {})
        practitioner = registry.compartments.get("Practitioner", {})
        self.links: dict[str, list[SearchParam]] = {}
        self.actors: dict[str, list[SearchParam]] = {}
        for rtype in registry.types:
            codes = patient.get(rtype) or (["patient"] if registry.get(rtype, "patient")
                                           else [])
            links = [p for c in codes if (p := registry.get(rtype, c)) is not None
                     and p.type == "reference" and "Patient" in (p.targets or ("Patient",))]
            if rtype in ("Patient", "AuditEvent") or not links:  # (the trail: by role)
                continue
            self.links[rtype] = links
            self.actors[rtype] = [p for c in {*practitioner.get(rtype, ()), *ACTOR_PARAMS}
                                  if (p := registry.get(rtype, c)) is not None
                                  and p.type == "reference"]

    def holds_patients(self, rtype: str) -> bool:
        return rtype == "Patient" or rtype in self.links

    def of_patients(self, rtype: str, ids: tuple[str, ...]) -> Node:
        """Resources of ``rtype`` about one of these patients."""
        if not ids:
            return NOTHING
        if rtype == "Patient":
            return IdMatch(ids, types=("Patient",))
        owner = (Cmp("target_type", "=", "Patient"), Cmp("target_id", "in", ids))
        return AnyOf(tuple(IndexMatch("reference", p.key, (owner,)) for p in self.links[rtype]))

    def patients_of(self, user: User) -> Node:
        """Patients the user may see (a criterion on Patient)."""
        actors = _targets(user.actors + (user.organizations if user.tier == "organization"
                                         else ()))
        nodes: list[Node] = []
        for code in ("general-practitioner", "organization"):
            param = self.registry.get("Patient", code)
            if param is not None and (code != "organization" or user.tier == "organization"):
                nodes.append(IndexMatch("reference", param.key, actors))
        for rtype, links in self.links.items():
            if not self.actors[rtype]:
                continue
            touched = AnyOf(tuple(IndexMatch("reference", a.key, actors)
                                  for a in self.actors[rtype]))
            nodes += [Has(rtype, link.key, "Patient", (touched,)) for link in links]
        return AnyOf(tuple(nodes))


def _targets(references: Sequence[str]) -> tuple[tuple[Cmp, ...], ...]:
    by_type: dict[str, list[str]] = {}
    for reference in references:
        rtype, _, id = reference.partition("/")
        by_type.setdefault(rtype, []).append(id)
    return tuple((Cmp("target_type", "=", t), Cmp("target_id", "in", tuple(ids)))
                 for t, ids in by_type.items())


class UserGate:
    """The gate (``core.gate.Gate``) of one user's request."""

    def __init__(self, user: User, data: PatientData, patients: Patients | None,
                 all_types: tuple[str, ...], load: Loader) -> None:
        self.user, self.data = user, data
        self.patients: tuple[str, ...] | None = None if patients is None else patients.ids
        self._patient_set = frozenset() if patients is None else patients.set
        self.all_types, self.load = all_types, load

    @property
    def actor(self) -> Actor:
        return Actor(self.user.reference, self.user.organization)

    def readable(self, rtype: str) -> bool:
        if "audit-admin" in self.user.roles:
            return rtype == "AuditEvent"
        if rtype == "AuditEvent":
            return False
        return not (self.user.admin and self.data.holds_patients(rtype))

    def admits(self, resource_type: str, id: str) -> bool | None:
        if not self.readable(resource_type):
            return False
        if self.patients is None or not self.data.holds_patients(resource_type):
            return True
        return id in self._patient_set if resource_type == "Patient" else None

    def criteria(self, types: tuple[str, ...]) -> tuple[Node, ...]:
        kinds = types or self.all_types
        if self.patients is None and all(self.readable(t) for t in kinds):
            return ()
        nodes: list[Node] = []
        free = [t for t in kinds if self.readable(t) and not self.data.holds_patients(t)]
        if free:
            nodes.append(OfType(tuple(free)))
        for rtype in kinds:
            if self.readable(rtype) and self.data.holds_patients(rtype):
                nodes.append(self.data.of_patients(rtype, self.patients)
                             if self.patients is not None else OfType((rtype,)))
        return (AnyOf(tuple(nodes)) if nodes else NOTHING,)

    async def check_writes(self, resources: Sequence[tuple[str, str, Resource | None]]) -> None:
        for rtype, id, resource in resources:
            where = f"{rtype}/{id}"
            if not self.readable(rtype):
                raise Forbidden(f"{self.user.reference} may not write {rtype}", where)
            current = await self.load(where) \
                if rtype == "PractitionerRole" or self.data.holds_patients(rtype) else None
            registering = rtype == "Patient" and current is None  # a new patient
            if self.patients is not None and self.data.holds_patients(rtype) \
                    and not registering \
                    and not all(self._inside(r) for r in (resource, current) if r is not None):
                raise Forbidden(f"{where} is about a patient outside {self.user.reference}'s "
                                f"tier ({self.user.tier})", where)
            if rtype == "PractitionerRole" and "security-admin" not in self.user.roles \
                    and _rights(resource) != _rights(current):
                raise Forbidden("only a security administrator (admin-role security-admin) "
                                "sets access tiers and admin roles", where)

    def _inside(self, resource: Resource) -> bool:
        """Whether a resource written stays inside the tier: each patient it names is
        the user's, or it names the user (who thereby takes the patient on)."""
        named = set(_references(resource))
        if named & set(self.user.actors):
            return True
        patients = {r.removeprefix("Patient/") for r in named if r.startswith("Patient/")}
        if resource.get("resourceType") == "Patient":
            patients = {str(resource.get("id"))}
        return patients <= self._patient_set


def _rights(role: Resource | None) -> tuple[str, frozenset[str]]:
    """What a PractitionerRole grants: its tier extension and admin roles."""
    if role is None:
        return "", frozenset()
    return tier_of(role, ""), admin_roles(role)


def _references(resource: Resource) -> list[str]:
    """The references a resource (and its contained resources) holds."""
    roots = [resource, *[c for c in resource.get("contained") or () if isinstance(c, dict)]]
    return [holder["reference"] for root in roots for holder, _ in walk_references(root, "")]


class Tiers:
    """Makes the gate of a user's request: the user's role read from storage, and their
    patients listed by one search, kept until data is written (AuditEvents aside: every
    request writes one) or ``CACHE_SECONDS``."""

    def __init__(self, service: FhirService, default_tier: str) -> None:
        self.service, self.default_tier = service, default_tier
        self._data: tuple[SearchRegistry, PatientData] | None = None
        self._patients: dict[tuple[str, str], tuple[float, int, Patients]] = {}
        self._users: dict[str, tuple[int, User | None]] = {}

    def data(self) -> PatientData:
        registry = self.service.search_registry
        if self._data is None or self._data[0] is not registry:
            self._data = (registry, PatientData(registry))
        return self._data[1]

    async def user(self, reference: str) -> User | None:
        """The user a token's fhirUser names, or None when it does not exist (kept while
        the data is unchanged)."""
        mark = await self.service.storage.data_mark()
        cached = self._users.get(reference)
        if cached is not None and cached[0] == mark:
            return cached[1]
        if len(self._users) > 10_000:
            self._users.clear()
        found = await self._user(reference, mark)
        self._users[reference] = (mark, found)
        return found

    async def _user(self, reference: str, mark: int) -> User | None:
        role = await self._load(reference)
        if role is None:
            return None
        if role["resourceType"] == "Practitioner":
            return User(reference, self.default_tier, frozenset(), (reference,), (), mark)
        actors = [reference]
        practitioner = (role.get("practitioner") or {}).get("reference")
        if isinstance(practitioner, str) and practitioner.startswith("Practitioner/"):
            actors.append(practitioner)
        tier = tier_of(role, self.default_tier)
        organizations: tuple[str, ...] = ()
        organization = (role.get("organization") or {}).get("reference")
        if tier == "organization" and isinstance(organization, str):
            organizations = await self._departments(organization)
        return User(reference, tier, admin_roles(role), tuple(actors), organizations, mark,
                    frozenset(code for _, code in role_codings(role)),
                    organization if isinstance(organization, str) else None)

    async def gate(self, user: User, patient: str = "", break_glass: bool = False) -> UserGate:
        """The gate of a request by ``user`` (bound to one patient by a ``patient/`` token;
        with break-glass, the alliance tier)."""
        data = self.data()
        all_types = tuple(self.service.search_registry.types)
        if user.admin:
            return UserGate(user, data, NO_PATIENTS, all_types, self._load)
        patients: Patients | None = None
        if user.tier != "alliance" and not break_glass:
            patients = await self._listed(user)
        if patient:
            patients = Patients.of((patient,)) if patients is None \
                or patient in patients.set else NO_PATIENTS
        return UserGate(user, data, patients, all_types, self._load)

    async def _listed(self, user: User) -> Patients:
        key, mark = (user.reference, user.tier), user.mark  # the data as the user was read
        cached = self._patients.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] == mark and now - cached[0] < CACHE_SECONDS:
            return cached[2]
        query = Query(("Patient",), (self.data().patients_of(user),), count=MAX_PATIENTS)
        page = await self.service.storage.search(query)
        ids = Patients.of(tuple(m.id for m in page.matches))
        if len(self._patients) > 1000:
            self._patients.clear()
        self._patients[key] = (now, mark, ids)
        return ids

    async def _departments(self, organization: str) -> tuple[str, ...]:
        """The organisation, its departments (``partOf``, to ``MAX_DEPTH`` levels) and
        their PractitionerRoles."""
        registry = self.service.search_registry
        part_of, works_at = registry.get("Organization", "partof"), \
            registry.get("PractitionerRole", "organization")
        found, frontier = [organization], [organization]
        for _ in range(MAX_DEPTH):
            if part_of is None or not frontier:
                break
            page = await self.service.storage.search(Query(
                ("Organization",), (IndexMatch("reference", part_of.key, _targets(frontier)),),
                count=MAX_PATIENTS))
            frontier = [f"Organization/{m.id}" for m in page.matches
                        if f"Organization/{m.id}" not in found]
            found += frontier
        if works_at is not None:
            page = await self.service.storage.search(Query(
                ("PractitionerRole",), (IndexMatch("reference", works_at.key, _targets(found)),),
                count=MAX_PATIENTS))
            found += [f"PractitionerRole/{m.id}" for m in page.matches]
        return tuple(found)

    async def _load(self, reference: str) -> Resource | None:
        rtype, _, id = reference.partition("/")
        stored = await self.service.storage.read(rtype, id)
        if stored is None or stored.deleted:
            return None
        value = jsonbytes.loads(stored.content)
        return value if isinstance(value, dict) else None
