"""What a FHIR request needs of an access token: (permission, resource type) pairs, from
the interaction the router matched. ``*`` as a type is only covered by a ``*`` scope.

Reads (read, vread, an instance's history) need ``r``; searches (type, system,
compartment, a type's or the system's history, ``_include``/``_revinclude`` targets, the
search of a conditional interaction) ``s``; create ``c``; update and patch ``u``; delete
and ``$expunge`` ``d``. A transaction or batch needs what each entry needs (checked entry
by entry); ``$validate`` only a valid token; ``$reindex`` everything on every type;
``$referral-kpis`` ``s`` on ServiceRequest and Task.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir_server.rest.request import FhirRequest

Needs = list[tuple[str, str]]
PUBLIC = frozenset({"capabilities", "api-docs", "smart-configuration"})
TOKEN_ONLY = frozenset({"transaction", "batch", "validate", "export-status", "export-file"})
ON_TYPE = {"read": "r", "vread": "r", "history-instance": "r", "terminology": "r",
           "search-type": "s", "history-type": "s", "create": "c", "update": "u",
           "patch": "u", "delete": "d", "expunge": "d"}
CONDITIONAL = frozenset({"update", "patch", "delete"})
Targets = Callable[[str, str], tuple[str, ...]]  # (source type, parameter code) -> types


def needs(request: FhirRequest, args: dict[str, str], targets: Targets) -> Needs:
    """The permissions the request needs (empty: a valid token is enough)."""
    interaction, rtype = request.interaction, args.get("type", "*")
    if interaction in TOKEN_ONLY:
        return []
    if interaction == "reindex":
        return [(p, "*") for p in "cruds"]
    if interaction == "everything":
        return [("r", "Patient"), ("s", "*")]
    if interaction == "referral-kpis":  # counts of referrals, no patient's data
        return [("s", "ServiceRequest"), ("s", "Task")]
    if interaction == "export":  # without _type: the types the token allows (the handler)
        return [(p, t) for t in _listed(request, "_type", "") if t for p in "rs"]
    if interaction == "search-system":
        found = [("s", t) for t in _listed(request, "_type", "*")]
    elif interaction == "history-system":
        found = [("s", "*")]
    elif interaction == "search-compartment":
        found = [("s", args.get("compartment_type", "*"))]
    else:
        found = [(ON_TYPE.get(interaction, "cruds"), rtype)]
        if (interaction in CONDITIONAL and "id" not in args) \
                or (interaction == "create" and request.header("if-none-exist")):
            found.append(("s", rtype))
    return found + _included(request, targets)


def _listed(request: FhirRequest, name: str, default: str) -> list[str]:
    types = [t.strip() for v in request.query if v[0] == name for t in v[1].split(",")]
    return [t for t in types if t] or [default]


def _included(request: FhirRequest, targets: Targets) -> Needs:
    """``s`` on the types ``_include`` and ``_revinclude`` could bring into a page."""
    found: Needs = []
    for name, value in request.query:
        base = name.split(":", 1)[0]
        parts = value.split(":")
        if base == "_revinclude" and parts[0]:
            found.append(("s", parts[0]))
        elif base == "_include" and len(parts) >= 2:
            kinds = (parts[2],) if len(parts) > 2 else targets(parts[0], parts[1]) or ("*",)
            found += [("s", t) for t in kinds]
    return found
