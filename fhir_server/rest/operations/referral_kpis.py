"""``$referral-kpis``: the month's two-way referral figures of the alliance's members.

``GET|POST [base]/$referral-kpis?period=YYYY-MM`` answers a Bundle (type collection) of one
MeasureReport per member; ``[base]/Organization/[id]/$referral-kpis?period=YYYY-MM`` that
organisation's MeasureReport. Rules and figures: core/referral_kpis.py and the
OperationDefinition ``referral-kpis`` of the alliance package.
"""

from __future__ import annotations

from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import dumps
from fhir_server.core.referral_kpis import ReferralKpis, collection
from fhir_server.rest.context import Context
from fhir_server.rest.operations.parameters import operation_parameters
from fhir_server.rest.render import json_response
from fhir_server.rest.request import FhirRequest, FhirResponse

PASSED = ("_format", "_pretty")


async def referral_kpis(ctx: Context, request: FhirRequest,
                        args: dict[str, str]) -> FhirResponse:
    period: str | None = None
    for name, value in await operation_parameters(request, "$referral-kpis",
                                                  ctx.settings.max_depth):
        if name == "period":
            if period is not None:
                raise FhirError("period may be given once", "period")
            period = value
        elif name not in PASSED:
            raise FhirError(f"Unknown parameter {name!r} of $referral-kpis", name)
    kpis = ReferralKpis(ctx.service)
    if "id" in args:
        await ctx.service.read("Organization", args["id"])  # 404 or 410 first
        [report] = await kpis.reports(period, f"Organization/{args['id']}")
        return json_response(200, dumps(report), request)
    return json_response(200, dumps(collection(await kpis.reports(period))), request)
