"""The reference point: a bare Starlette endpoint returning fixed bytes (a stored Patient)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ.get("BARE_BODY_FILE", "/dev/null")).read_bytes()


async def endpoint(request):  # type: ignore[no-untyped-def]
    return Response(BODY, media_type="application/fhir+json")


app = Starlette(routes=[Route("/fhir/Patient/{id}", endpoint)])
