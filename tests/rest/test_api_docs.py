"""The API description: an OpenAPI 3 document generated from the CapabilityStatement, valid
by a maintained validator, browsable with Swagger UI from bundled assets, and fuzzed by
schemathesis (bounded) without a single 5xx."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("openapi") / "demo.db"
    config = Settings(storage=f"sqlite:///{db}")
    load_demo(config)
    app = build_app(config)
    with Client(app) as client:
        yield app, client


def test_the_document_is_valid_openapi_and_covers_the_capabilities(demo_app):
    _, client = demo_app
    document = client.get("/api-docs").json()
    validate(document)
    statement = client.get("/metadata").json()["rest"][0]
    assert len(statement["resource"]) == 145
    for resource in statement["resource"]:
        search = document["paths"][f"/{resource['type']}"]["get"]
        names = {p["name"] for p in search["parameters"]}
        assert {p["name"] for p in resource["searchParam"]} <= names
        assert "get" in document["paths"][f"/{resource['type']}/{{id}}"]
    assert "/Patient/{id}/$everything" in document["paths"]
    assert document["servers"] == [{"url": "http://testserver/fhir"}]


def test_swagger_ui_is_served_from_bundled_assets(demo_app):
    _, client = demo_app
    page = client.get("/swagger-ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="http://testserver/fhir/([^"]+)"', page.text)
    assert len(assets) == 5
    for asset in assets:
        answer = client.get(f"/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    assert "http" + "s://" not in page.text.replace(
        "http://testserver", "")  # nothing from another host
    assert client.get("/swagger-ui/secret.py").status_code == 404


FUZZED = (r"^/(metadata|_history|Patient(/\{id\}(/\$everything|/_history(/\{vid\})?)?)?"
          r"|Patient/(_history|\$everything)|Observation|Organization/\{id\}|\{type\}/\$validate)?$")


def without_lifespan(app):
    """The app for schemathesis's client, which would open (and close) it again: the test's
    own client keeps it open."""

    async def asgi(scope, receive, send):
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    return asgi


def test_schemathesis_finds_no_server_error(demo_app):
    app, _ = demo_app
    schema = schemathesis.openapi.from_asgi("/fhir/api-docs", without_lifespan(app)).include(
        path_regex=FUZZED)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    statuses: list[int] = []
    failures = []
    for operation in operations:

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append((case.as_curl_command(), response.status_code))

        run()
    assert failures == []
    assert len(statuses) > 100 and 200 in statuses
