"""The referral direction rule (alliance-ref-2), which needs the resources a referral names.

An upward referral (双向转诊, 上转) goes from a lower tier to a higher one; a downward one the
other way. An organisation's tier is its hospital level (一级/二级/三级, extension
``hospital-level``), found on it or on the hospital it is ``partOf`` (a department);
grassroots institutions (WS 218 types B community, C township, D village) without a level
count as tier 1. The requester is a PractitionerRole (its organisation) or an Organization;
the performer an Organization. When either tier cannot be found the rule does not judge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fhir_server.outcome import Issue
from fhir_server.types import Resource

BASE = "http://alliance-fhir.org/fhir"
DIRECTION = f"{BASE}/StructureDefinition/referral-direction"
LEVEL = f"{BASE}/StructureDefinition/hospital-level"
INSTITUTION_TYPE = f"{BASE}/CodeSystem/institution-type"
GRASSROOTS = ("B", "C", "D")
MAX_PART_OF = 5  # department -> hospital chains are short; a loop must end

Resolve = Callable[[str], Awaitable[Resource | None]]  # "Type/id" -> the resource


def _extension_code(resource: Resource, url: str) -> str | None:
    for extension in resource.get("extension") or []:
        if extension.get("url") == url:
            return (extension.get("valueCoding") or {}).get("code")
    return None


async def organization_tier(organization: Resource, resolve: Resolve) -> int | None:
    """The tier of an organisation, walking ``partOf`` up to its hospital."""
    for _ in range(MAX_PART_OF):
        level = _extension_code(organization, LEVEL)
        if level and level.isdigit():
            return int(level)
        codes = [c.get("code") or "" for t in organization.get("type") or []
                 for c in t.get("coding") or [] if c.get("system") == INSTITUTION_TYPE]
        if any(code.startswith(GRASSROOTS) for code in codes):
            return 1
        parent = (organization.get("partOf") or {}).get("reference")
        found = await resolve(parent) if parent else None
        if found is None:
            return None
        organization = found
    return None


async def tier_of(reference: str | None, resolve: Resolve) -> int | None:
    """The tier behind an Organization or PractitionerRole reference."""
    target = await resolve(reference) if reference else None
    if target is not None and target.get("resourceType") == "PractitionerRole":
        organization = (target.get("organization") or {}).get("reference")
        target = await resolve(organization) if organization else None
    if target is None or target.get("resourceType") != "Organization":
        return None
    return await organization_tier(target, resolve)


async def referral_issues(referral: Resource, resolve: Resolve) -> list[Issue]:
    """alliance-ref-2 on one ServiceRequest (no issues when it has no direction)."""
    direction = _extension_code(referral, DIRECTION)
    if direction not in ("up", "down"):
        return []
    performers = [p.get("reference") for p in referral.get("performer") or []]
    requester = await tier_of((referral.get("requester") or {}).get("reference"), resolve)
    performer = await tier_of(performers[0] if performers else None, resolve)
    if requester is None or performer is None:
        return []
    if direction == "up" and requester >= performer:
        return [Issue("business-rule", "alliance-ref-2: an upward referral goes to a higher "
                      f"tier, but the requester is tier {requester} and the performer tier "
                      f"{performer} / 上转须转往更高级别的机构（申请方 {requester} 级，"
                      f"接收方 {performer} 级）", "ServiceRequest.performer[0]")]
    if direction == "down" and requester <= performer:
        return [Issue("business-rule", "alliance-ref-2: a downward referral goes to a lower "
                      f"tier, but the requester is tier {requester} and the performer tier "
                      f"{performer} / 下转须转往更低级别的机构（申请方 {requester} 级，"
                      f"接收方 {performer} 级）", "ServiceRequest.performer[0]")]
    return []
