"""Every interaction in the route table has its page in docs/api."""

from __future__ import annotations

from pathlib import Path

from fhir_server.rest.routes import ROUTES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api"


def test_every_route_has_a_doc_page():
    missing = {route.interactions[0] for route in ROUTES
               if not (DOCS / f"{route.interactions[0]}.md").exists()}
    assert not missing
