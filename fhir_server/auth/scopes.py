"""SMART scopes, v1 (``system/Patient.read``) and v2 (``system/Patient.rs``): ``system/``
for backend clients, ``user/`` and ``patient/`` for users' tokens.

A scope grants permissions (c create, r read, u update, d delete, s search) on one
resource type or on every type (``*``). v1 ``read`` is ``rs``, ``write`` is ``cud``, ``*``
is ``cruds``. Spec: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
(v2 scopes with search parameters, ``?…``, are not supported: they are refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PERMISSIONS = "cruds"
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
SCOPE = re.compile(r"^(system|user|patient)/([A-Za-z]+|\*)\.([a-z*]+)$")
ALL = "*"


class ScopeError(ValueError):
    """A scope this server does not grant (its text says why)."""


@dataclass(frozen=True, slots=True)
class Scope:
    context: str  # "system" (backend services); "user" and "patient" come with user tokens
    resource_type: str  # a type or "*"
    permissions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        found = SCOPE.match(text)
        if found is None:
            raise ScopeError(f"{text!r} is not a SMART scope such as system/Patient.rs")
        context, rtype, action = found.groups()
        letters = V1.get(action, action)
        if not letters or any(c not in PERMISSIONS for c in letters) \
                or list(letters) != sorted(letters, key=PERMISSIONS.index) \
                or len(set(letters)) != len(letters):
            raise ScopeError(f"{text!r}: permissions are read, write, * or letters of "
                             "'cruds' in that order")
        return cls(context, rtype, frozenset(letters))

    def covers(self, other: Scope) -> bool:
        return self.context == other.context \
            and self.resource_type in (ALL, other.resource_type) \
            and other.permissions <= self.permissions

    def allows(self, permission: str, resource_type: str) -> bool:
        return permission in self.permissions and self.resource_type in (ALL, resource_type)


def parse_scopes(text: str, contexts: Iterable[str] = ("system",)) -> list[Scope]:
    """The resource scopes of a space-separated list; other SMART scopes (``openid``,
    ``launch``…) are not resource scopes and are ignored."""
    allowed = tuple(contexts)
    scopes = []
    for word in text.split():
        if "/" not in word:
            continue
        scope = Scope.parse(word)
        if scope.context not in allowed:
            raise ScopeError(f"{word!r}: only {', '.join(allowed)} scopes are granted here")
        scopes.append(scope)
    return scopes


@dataclass(frozen=True, slots=True)
class Grant:
    """What one access token allows."""

    client_id: str
    scopes: tuple[Scope, ...]
    scope_text: str
    deidentified_only: bool = False
    user: str = ""  # a user token's fhirUser as ``Type/id``; empty for a backend client
    patient: str = ""  # the ``patient`` claim ``patient/`` scopes are bound to

    @property
    def context(self) -> str:
        """``system`` for a backend client, ``user`` (or ``patient`` when it has only
        patient scopes) for a user."""
        if not self.user:
            return "system"
        return "user" if any(s.context == "user" for s in self.scopes) else "patient"

    def allows(self, permission: str, resource_type: str) -> bool:
        return any(s.allows(permission, resource_type) for s in self.scopes)

    def missing(self, needs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (permission, type) pairs this grant does not cover."""
        return [(p, t) for p, t in needs if not self.allows(p, t)]
