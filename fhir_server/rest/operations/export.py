"""Bulk Data ``$export`` (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

Kick-off at ``[base]/$export``, ``[base]/Patient/$export`` and ``[base]/Group/[id]/$export``
(GET, or POST with Parameters) answers 202 with the status URL
``[base]/$export-status/[job]``: 202 with ``X-Progress`` while the job runs, 200 with the
manifest when done, 404 once cancelled (``DELETE``) or expired. Files download from
``[base]/$export-file/[job]/[name]`` (with the token when auth is on). ``deidentify=true``
asks for the de-identified variant (always given to ``--deidentified-only`` clients).
"""

from __future__ import annotations

import datetime as dt
import os
from email.utils import formatdate
from urllib.parse import parse_qsl, urlencode

import orjson

from fhir_server import jsonbytes
from fhir_server.audit.events import export_event
from fhir_server.auth.scopes import Grant
from fhir_server.bulk.job import DONE, FAILED, Job
from fhir_server.bulk.request import ExportRequest, parse_kickoff
from fhir_server.bulk.runner import ExportRunner, now_ms
from fhir_server.core.errors import FhirError, Forbidden, NotFound, TooManyRequests
from fhir_server.outcome import Issue
from fhir_server.rest.context import Context
from fhir_server.rest.negotiation import prefer
from fhir_server.rest.operations.parameters import operation_parameters
from fhir_server.rest.render import json_response, outcome_response
from fhir_server.rest.request import FhirRequest, FhirResponse

NDJSON = "application/fhir+ndjson"
RETRY_SECONDS = 60  # when too many exports run


def _runner(ctx: Context) -> ExportRunner:
    assert ctx.exports is not None
    return ctx.exports


def _grant(request: FhirRequest) -> Grant | None:
    return request.grant if isinstance(request.grant, Grant) else None


async def export_kickoff(ctx: Context, request: FhirRequest,
                         args: dict[str, str]) -> FhirResponse:
    if prefer(request, "respond-async") is None:
        raise FhirError("$export runs asynchronously: send Prefer: respond-async", "Prefer")
    level = "group" if "id" in args else "patient" if request.path.startswith("Patient/") \
        else "system"
    searcher = ctx.service.searcher
    wanted = await operation_parameters(request, "$export", ctx.settings.max_depth)
    export = parse_kickoff(wanted, level, ctx.service.registry.ordered,
                           searcher.compartment_types("Patient"))
    if level == "group":
        export.group = args["id"]
        export.patients = await _members(ctx, args["id"], export.patients)
    for rtype, queries in export.filters.items():  # bad criteria: 400 now, not a failed job
        for query in queries:
            await searcher.parse_request((rtype,), _pairs(query), strict=True)
    grant = _grant(request)
    if grant is not None:
        _limit_to_grant(export, grant, explicit=any(n == "_type" for n, _ in wanted))
    runner = _runner(ctx)
    if await runner.running() >= ctx.settings.export_max_jobs:
        raise TooManyRequests(f"{ctx.settings.export_max_jobs} exports are running; try "
                              "again later", RETRY_SECONDS)
    created = now_ms()
    job = Job(id=os.urandom(16).hex(), client=grant.client_id if grant else "",
              request_url=_url(request), request=export,
              mark=await ctx.service.storage.snapshot_mark(),
              transaction_time=_instant(created), created_ms=created,
              expires_ms=created + ctx.settings.export_expiry * 1000,
              secret=os.urandom(32).hex(), user=grant.user if grant else "",
              patient=grant.patient if grant and grant.context == "patient" else "",
              break_glass=request.header("x-purpose-of-use") == "BTG")
    await runner.start(job)
    await _audit(ctx, request, job, "E", f"export started: {job.request_url}")
    status_url = f"{request.base_url}/$export-status/{job.id}"
    answer = outcome_response(202, [Issue("informational", f"export {job.id} started; poll "
                                      f"{status_url}", severity="information")], request)
    answer.headers.append(("content-location", status_url))
    return answer


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _url(request: FhirRequest) -> str:
    query = f"?{urlencode(request.query)}" if request.query else ""
    return f"{request.base_url}/{request.path}{query}"


def _instant(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


async def _members(ctx: Context, group_id: str, asked: list[str]) -> list[str]:
    """The Patient ids of a Group (400 if it holds anything else), narrowed to ``patient``
    when that is given."""
    group = orjson.loads((await ctx.service.read("Group", group_id)).content)
    members: list[str] = []
    for index, member in enumerate(group.get("member") or []):
        reference = str(((member or {}).get("entity") or {}).get("reference", ""))
        rtype, _, pid = reference.rpartition("/")
        if rtype.rsplit("/", 1)[-1] != "Patient" or not pid:
            raise FhirError(f"Group/{group_id} is not a group of Patients: member {index} is "
                            f"{reference or 'not a reference'}", f"Group.member[{index}]")
        members.append(pid)
    return [m for m in members if m in asked] if asked else members


def _limit_to_grant(export: ExportRequest, grant: Grant, explicit: bool) -> None:
    """A client exports only what its token may read: named types it may not read are
    refused (by the guard); without ``_type``, the types it may not read are left out."""
    if not explicit:
        export.types = [t for t in export.types if grant.allows("r", t)
                        and grant.allows("s", t)]
        export.filters = {t: q for t, q in export.filters.items() if t in export.types}
        if not export.types:
            raise Forbidden(f"the access token's scopes ({grant.scope_text}) allow no type "
                            "to export")
    if grant.deidentified_only:
        export.deidentify = True


async def _job(ctx: Context, request: FhirRequest, job_id: str) -> Job:
    """The job, if it exists and belongs to the requesting client (else 404)."""
    job = await _runner(ctx).load(job_id)
    grant = _grant(request)
    if job is None or (grant is not None and job.client != grant.client_id):
        raise NotFound(f"No export {job_id} (unknown, cancelled or expired)", "job")
    return job


async def export_status(ctx: Context, request: FhirRequest,
                        args: dict[str, str]) -> FhirResponse:
    job = await _job(ctx, request, args["job"])
    if request.method == "DELETE":
        await _runner(ctx).cancel(job)
        await _audit(ctx, request, job, "D", "export cancelled")
        return outcome_response(202, [Issue("informational", f"export {job.id} cancelled",
                                            severity="information")], request)
    if job.status == FAILED:
        return outcome_response(500, [Issue("exception", f"the export failed: {job.failure}",
                                            severity="fatal")], request)
    if job.status != DONE:
        types = job.request.types
        current = types[min(job.part, len(types) - 1)] if types else ""
        progress = (f"{job.written} resources written; {current} "
                    f"({min(job.part + 1, len(types))} of {len(types)} types)")
        return FhirResponse(202, b"", [("x-progress", progress), ("retry-after", "1")])
    return json_response(200, jsonbytes.dumps(_manifest(ctx, request, job)), request,
                         [("expires", _http_date(job.expires_ms))])


def _manifest(ctx: Context, request: FhirRequest, job: Job) -> dict[str, object]:
    def entry(kind: str, name: str, count: int) -> dict[str, object]:
        return {"type": kind, "url": f"{request.base_url}/$export-file/{job.id}/{name}",
                "count": count}
    return {
        "transactionTime": job.transaction_time,
        "request": job.request_url,
        "requiresAccessToken": ctx.settings.auth == "smart",
        "output": [entry(o.type, o.name, o.count) for o in job.outputs
                   if o.type != "OperationOutcome"],
        "error": [entry(o.type, o.name, o.count) for o in job.outputs
                  if o.type == "OperationOutcome"],
        **({"extension": {"deidentified": True}} if job.request.deidentify else {}),
    }


def _http_date(ms: int) -> str:
    return formatdate(ms / 1000, usegmt=True)


async def export_file(ctx: Context, request: FhirRequest, args: dict[str, str]) -> FhirResponse:
    job = await _job(ctx, request, args["job"])
    name = args["name"]
    output = next((o for o in job.outputs if o.name == name), None)
    if output is None:
        raise NotFound(f"Export {job.id} has no file {name}", "name")
    await _audit(ctx, request, job, "R", f"export file {name} downloaded ({output.count} "
                 "resources)")
    return FhirResponse(200, b"", [("content-type", NDJSON)],
                        file=_runner(ctx).files(job.id) / name)


async def _audit(ctx: Context, request: FhirRequest, job: Job, action: str,
                 description: str) -> None:
    await ctx.record(export_event(job.client, action, description, job.id, request.client,
                                  job.request.group))
