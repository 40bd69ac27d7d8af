"""What operators get: health checks, Prometheus metrics, request log lines with request
ids, CORS for configured origins, the version."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Client

from fhir_server.app import build_app
from fhir_server.cli import main


def samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.http_get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def test_health(client):
    assert client.http_get("/health/live").json() == {"status": "live"}
    ready = client.http_get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and "alliance.fhir.core" in ready.json()["package"]


def test_not_ready_before_start_up(settings):
    app = build_app(settings)  # lifespan not run: the service is not open
    with Client(app, lifespan=False) as client:
        ready = client.http_get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"


def test_metrics_count_requests_by_interaction_type_and_status(client):
    client.put("/Patient/p", json={"resourceType": "Patient", "id": "p"})
    client.get("/Patient/p")
    client.get("/Patient/p")
    client.get("/Patient/nobody")
    client.get("/Unknown/x")
    found = samples(client)
    assert found[("fhir_requests_total", (("interaction", "read"), ("status", "200"),
                                          ("type", "Patient")))] == 2
    assert found[("fhir_requests_total", (("interaction", "read"), ("status", "404"),
                                          ("type", "Patient")))] == 1
    assert found[("fhir_requests_total", (("interaction", "update"), ("status", "201"),
                                          ("type", "Patient")))] == 1
    # an unknown type is not a label value: clients cannot grow the series without bound
    assert found[("fhir_requests_total", (("interaction", "read"), ("status", "404"),
                                          ("type", "")))] == 1
    assert found[("fhir_request_duration_seconds_count", (("interaction", "read"),))] == 4
    assert found[("fhir_commit_group_size_count", ())] >= 1
    assert found[("fhir_database_size_bytes", ())] > 0
    assert ("fhir_writer_queue_depth", ()) in found


def test_a_log_line_per_request_without_personal_data(settings, caplog):
    caplog.set_level(logging.INFO, logger="fhir_server.access")
    app = build_app(settings)
    assert app.observer is not None and app.observer.lines is not None
    app.observer.lines.stream = written = io.BytesIO()
    with Client(app) as client:
        client.post("/Patient", json={"resourceType": "Patient", "name": [{"text": "张三"}]})
        answer = client.get("/Patient", params={"name": "张三"},
                            headers={"x-request-id": "his-42"})
        assert answer.headers["x-request-id"] == "his-42"
        made = client.get("/metadata").headers["x-request-id"]
    text = written.getvalue().decode()
    lines = [orjson.loads(line) for line in text.splitlines()]
    search = next(line for line in lines if line["request_id"] == "his-42")
    assert search["interaction"] == "search-type" and search["type"] == "Patient"
    assert search["status"] == 200 and search["method"] == "GET" and search["ms"] >= 0
    assert any(line["request_id"] == made and line["interaction"] == "capabilities"
               for line in lines)
    assert "张三" not in text and "%E5" not in text and "name" not in text


def test_no_log_lines_above_info(settings, caplog):
    caplog.set_level(logging.WARNING, logger="fhir_server.access")
    app = build_app(settings)
    assert app.observer is not None and app.observer.lines is None


def test_an_unusable_request_id_is_replaced(client):
    answer = client.get("/metadata", headers={"x-request-id": "bad id with spaces"})
    assert answer.headers["x-request-id"] != "bad id with spaces"
    assert len(answer.headers["x-request-id"]) == 24


def test_metrics_switched_off(settings):
    with Client(build_app(replace(settings, metrics=False))) as client:
        assert client.http_get("/metrics").status_code == 404
        assert client.http_get("/health/live").status_code == 200


def test_cors_only_for_configured_origins(settings):
    app = build_app(replace(settings, cors_origins="https://his.example, https://pacs.example"))
    with Client(app) as client:
        answer = client.request("OPTIONS", "/Patient", headers={
            "origin": "https://his.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization"})
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == "https://his.example"
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert answer.headers["access-control-allow-headers"] == "content-type, authorization"
        read = client.get("/metadata", headers={"origin": "https://pacs.example"})
        assert read.headers["access-control-allow-origin"] == "https://pacs.example"
        assert "Location" in read.headers["access-control-expose-headers"]
        other = client.get("/metadata", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cors_by_default(client):
    read = client.get("/metadata", headers={"origin": "https://his.example"})
    assert "access-control-allow-origin" not in read.headers


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip().startswith("alliance-fhir 0.1.0")
