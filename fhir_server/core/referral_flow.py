"""Two-way referral (双向转诊) as a workflow: the moves a referral Task may make.

A referral is an AllianceReferral ServiceRequest plus an AllianceReferralTask whose ``focus``
is that ServiceRequest and whose ``owner`` is the receiving organisation. Task.status moves
only along ``NEXT`` (requested → received → accepted | rejected, accepted → in-progress →
completed, requested | received → cancelled); a rejection needs a coded ``statusReason``, a
completed downward referral its treatment outcome (``Task.output``). The ServiceRequest
follows its Task (``FOLLOWS``): the server writes its new status in the same commit.
A Task may be created in any status (a referral under way imported from another system, as
R4 Task allows); what a status requires holds from the version that reaches it. With a
user (auth on), only the owner's side receives, accepts, rejects, starts or completes, and
only the requester's side cancels. Task: https://hl7.org/fhir/R4/task.html#statemachine
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fhir_server.core.gate import Actor
from fhir_server.outcome import Issue
from fhir_server.types import Resource

BASE = "http://alliance-fhir.org/fhir"
REFERRAL_PROFILE = f"{BASE}/StructureDefinition/AllianceReferral"
TASK_PROFILE = f"{BASE}/StructureDefinition/AllianceReferralTask"
DIRECTION = f"{BASE}/StructureDefinition/referral-direction"
ACCEPTED = f"{BASE}/StructureDefinition/referral-accepted"
REJECTION_SYSTEM = f"{BASE}/CodeSystem/referral-rejection-reason"
REJECTION_CODES = ("no-bed", "beyond-capability", "not-indicated", "patient-declined", "other")
REFERRAL_CATEGORY = ("http://snomed.info/sct", "3457005")  # Patient referral

NEXT: dict[str, tuple[str, ...]] = {
    "requested": ("received", "cancelled"),
    "received": ("accepted", "rejected", "cancelled"),
    "accepted": ("in-progress",),
    "in-progress": ("completed",),
}
OWNER_MOVES = frozenset({"received", "accepted", "rejected", "in-progress", "completed"})
FOLLOWS = {"requested": "active", "received": "active", "accepted": "active",
           "in-progress": "active", "completed": "completed", "rejected": "revoked",
           "cancelled": "revoked"}
CHINESE = {"requested": "已申请", "received": "已接收", "accepted": "已接受",
           "rejected": "已拒绝", "in-progress": "进行中", "completed": "已完成",
           "cancelled": "已取消", "draft": "草稿", "ready": "就绪", "on-hold": "暂停",
           "failed": "失败", "entered-in-error": "录入错误"}
MAX_PART_OF = 8  # department -> hospital chains are short; a loop must end

Load = Callable[[str], Awaitable[tuple[Resource, int] | None]]  # Type/id -> (current, version)


@dataclass(frozen=True, slots=True)
class Follow:
    """A referral's new status, written by the server in the commit of its Task's move."""

    referral: Resource  # the stored ServiceRequest with its new status
    version: int


@dataclass(slots=True)
class Verdict:
    """What a commit's referral Tasks need: issues (refused), the ServiceRequests that
    follow, and the version each Task moved from (held as its If-Match)."""

    issues: list[Issue]
    follows: dict[str, Follow]
    held: dict[str, int]
    fills: dict[str, Fill]  # Task id -> what the server adds to its new version


@dataclass(slots=True)
class Fill:
    """What the server adds to a referral Task's new version when its content lacks it."""

    accepted_now: bool = False  # the referral-accepted time: this version's own
    accepted: str | None = None  # the referral-accepted time an earlier version holds
    priority: str | None = None  # the referral's priority (the worklist sorts on it)


def is_referral(resource: Resource | None) -> bool:
    """An alliance referral ServiceRequest: by profile, direction extension or category."""
    if resource is None or resource.get("resourceType") != "ServiceRequest":
        return False
    if REFERRAL_PROFILE in ((resource.get("meta") or {}).get("profile") or ()):
        return True
    if any(isinstance(e, dict) and e.get("url") == DIRECTION
           for e in resource.get("extension") or ()):
        return True
    return any((c.get("system"), c.get("code")) == REFERRAL_CATEGORY
               for concept in resource.get("category") or () if isinstance(concept, dict)
               for c in concept.get("coding") or () if isinstance(c, dict))


def direction(referral: Resource) -> str | None:
    """``up`` or ``down``, from the referral-direction extension."""
    for extension in referral.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == DIRECTION:
            return (extension.get("valueCoding") or {}).get("code")
    return None


def accepted_at(task: Resource) -> str | None:
    """The referral-accepted time a Task carries."""
    for extension in task.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == ACCEPTED:
            value = extension.get("valueDateTime")
            return value if isinstance(value, str) else None
    return None


def with_accepted(task: Resource, moment: str) -> Resource:
    """The Task with its referral-accepted time."""
    extensions = [e for e in task.get("extension") or () if not (
        isinstance(e, dict) and e.get("url") == ACCEPTED)]
    return {**task, "extension": [*extensions, {"url": ACCEPTED, "valueDateTime": moment}]}


def _reference(holder: object) -> str | None:
    value = holder.get("reference") if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None


def _statuses(statuses: tuple[str, ...]) -> str:
    return ", ".join(f"{s} ({CHINESE.get(s, s)})" for s in statuses) or "none / 无"


class ReferralRules:
    """Judges the referral Tasks of one commit, reading what they name through ``load``
    (the commit's own writes first, then storage)."""

    def __init__(self, load: Load, written: dict[str, Resource]) -> None:
        self._load, self.written = load, written

    async def resource(self, reference: str | None) -> Resource | None:
        if not reference:
            return None
        if reference in self.written:
            return self.written[reference]
        found = await self._load(reference)
        return None if found is None else found[0]

    async def judge(self, tasks: list[tuple[Resource, str]], party: Actor | None) -> Verdict:
        """``tasks``: each Task written with the place of its element paths."""
        verdict = Verdict([], {}, {}, {})
        for task, where in tasks:
            await self._judge(task, where, party, verdict)
        return verdict

    async def _judge(self, task: Resource, where: str, party: Actor | None,
                     verdict: Verdict) -> None:
        focus = _reference(task.get("focus"))
        referral = await self.resource(focus) if focus and focus.startswith(
            "ServiceRequest/") else None
        if not is_referral(referral):
            if TASK_PROFILE in ((task.get("meta") or {}).get("profile") or ()):
                verdict.issues.append(Issue(
                    "business-rule", "A referral Task's focus must be an alliance referral "
                    "(AllianceReferral ServiceRequest) / 转诊任务的 focus 必须指向转诊单",
                    f"{where}.focus"))
            return
        assert referral is not None and focus is not None
        stored = await self._load(f"Task/{task['id']}")
        before = None if stored is None else stored[0].get("status")
        after = str(task.get("status"))
        if stored is not None:
            verdict.held[str(task["id"])] = stored[1]
        issues = verdict.issues
        if before is not None and before != after:
            allowed = NEXT.get(str(before), ())
            if after not in allowed:
                issues.append(Issue(
                    "business-rule", f"A referral Task cannot move from {before} to {after}; "
                    f"allowed next: {_statuses(allowed)} / 转诊任务不能从"
                    f"{CHINESE.get(before, before)}变为{CHINESE.get(after, after)}，"
                    f"允许的下一状态：{_statuses(allowed)}", f"{where}.status"))
                return
        fill = Fill()
        if accepted_at(task) is None:
            fill.accepted_now = after == "accepted" and before != "accepted"
            fill.accepted = None if stored is None else accepted_at(stored[0])
        if not task.get("priority") and isinstance(referral.get("priority"), str):
            fill.priority = referral["priority"]
        if fill != Fill():
            verdict.fills[str(task["id"])] = fill
        if before != after:
            refusal = None if after == "requested" else \
                await self._party_refusal(task, referral, after, party)
            if refusal:
                issues.append(Issue("forbidden", refusal, f"{where}.status"))
                return
            issues += _requirements(task, referral, after, where)
        await self._follow(referral, focus, after, verdict)

    async def _follow(self, referral: Resource, focus: str, status: str,
                      verdict: Verdict) -> None:
        wanted = FOLLOWS.get(status)
        current = referral.get("status")
        if wanted is None or current in (wanted, "entered-in-error"):
            return
        if focus in self.written:
            verdict.issues.append(Issue(
                "business-rule", f"{focus} must be {wanted} while its Task is {status} "
                f"/ 转诊单状态应为 {wanted}", f"{focus}.status"))
            return
        stored = await self._load(focus)
        if stored is not None:
            verdict.follows[focus] = Follow({**stored[0], "status": wanted}, stored[1])

    async def _party_refusal(self, task: Resource, referral: Resource, status: str,
                             party: Actor | None) -> str | None:
        """Why this user may not make this move (None: they may; no user: the server's
        own work, a backend client or auth off)."""
        if party is None:
            return None
        if status in OWNER_MOVES:
            owner = _reference(task.get("owner"))
            if owner and await self._related(party.organization, owner):
                return None
            return (f"Only the receiving organisation ({owner}) may set a referral Task "
                    f"{status} / 仅接收机构可将转诊任务设为{CHINESE[status]}")
        requester = _reference(task.get("requester")) or _reference(referral.get("requester"))
        if requester == party.reference:
            return None
        role = await self.resource(requester) if requester else None
        side = _reference(role.get("organization")) if role else None
        if requester and requester.startswith("Organization/"):
            side = requester
        if side and await self._related(party.organization, side):
            return None
        return (f"Only the referring side ({requester}) may cancel a referral "
                "/ 仅转出方可取消转诊")

    async def _related(self, organization: str | None, other: str) -> bool:
        """Whether ``organization`` is ``other``, one of its departments, or the hospital
        ``other`` is a department of."""
        if not organization:
            return False
        return await self._within(organization, other) or await self._within(other,
                                                                              organization)

    async def _within(self, inner: str, outer: str) -> bool:
        reference: str | None = inner
        for _ in range(MAX_PART_OF):
            if reference is None:
                return False
            if reference == outer:
                return True
            found = await self.resource(reference)
            reference = _reference(found.get("partOf")) if found else None
        return False


def _requirements(task: Resource, referral: Resource, status: str, where: str) -> list[Issue]:
    """What reaching ``status`` asks of the Task."""
    if status == "rejected":
        codes = [c.get("code") for c in (task.get("statusReason") or {}).get("coding") or ()
                 if isinstance(c, dict) and c.get("system") == REJECTION_SYSTEM]
        if not any(code in REJECTION_CODES for code in codes):
            return [Issue("business-rule", "A rejected referral needs a statusReason coded "
                          f"from {REJECTION_SYSTEM} ({', '.join(REJECTION_CODES)}) "
                          "/ 拒绝转诊须注明原因", f"{where}.statusReason")]
    if status == "completed" and direction(referral) == "down" and not task.get("output"):
        return [Issue("business-rule", "A completed downward referral needs its treatment "
                      "outcome in Task.output / 下转完成须填写治疗结果", f"{where}.output")]
    return []
