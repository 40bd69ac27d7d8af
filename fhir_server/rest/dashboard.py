"""``GET /dashboard``: the two-way referral dashboard (a page, its script and style, and
Apache ECharts from ``fhir_server/web/vendor``: no CDN, hospitals' networks are often
closed). The page reads everything through the FHIR API (``$referral-kpis``,
``Organization``), with the user's token when auth is on."""

from __future__ import annotations

import html
from importlib import resources as package_files

from fhir_server.rest.ops import OpsHandler
from fhir_server.rest.request import FhirRequest, FhirResponse

ASSETS = {"dashboard.js": "application/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8",
          "echarts.min.js": "application/javascript; charset=utf-8"}
PAGE = ("content-type", "text/html; charset=utf-8")
# its own assets and API only; ECharts sets element styles
POLICY = ("content-security-policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; frame-ancestors 'none'")


def _file(name: str) -> bytes:
    web = package_files.files("fhir_server.web")
    return (web / "vendor" / name if name == "echarts.min.js" else web / name).read_bytes()


class Dashboard:
    """The dashboard's routes outside the FHIR base, its files read once."""

    def __init__(self, base_path: str) -> None:
        self.base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.files = {name: _file(name) for name in ASSETS}
        self.page = _file("dashboard.html").decode()
        self.routes: dict[tuple[str, str], OpsHandler] = {
            ("GET", "/dashboard"): self.index, ("GET", "/dashboard/"): self.index,
            **{("GET", f"/dashboard/{name}"): self._asset(name) for name in ASSETS}}

    async def index(self, request: FhirRequest) -> FhirResponse:
        body = self.page.format(base=html.escape(self.base), assets="/dashboard")
        return FhirResponse(200, body.encode(), [PAGE, POLICY, ("cache-control", "no-cache")])

    def _asset(self, name: str) -> OpsHandler:
        async def asset(request: FhirRequest) -> FhirResponse:
            return FhirResponse(200, self.files[name], [
                ("content-type", ASSETS[name]), ("cache-control", "public, max-age=3600")])
        return asset
