"""Bounded resources and safe defaults: security headers, private database files, the
admin switch, the per-client rate limit, the search deadline, the body read timeout."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import replace

import pytest
from support import Client

from fhir_server.app import build_app
from fhir_server.core.errors import TooManyRequests
from fhir_server.rest.ratelimit import RateLimiter


def test_every_response_carries_the_security_headers(client):
    for response in (client.get("/metadata"), client.get("/Patient/nobody"),
                     client.http_get("/health/live")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == \
            "default-src 'none'; frame-ancestors 'none'"
        assert "server" not in response.headers
    page = client.get("/swagger-ui/")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


@pytest.mark.sqlite_only("file permissions of the database files")
def test_database_files_are_readable_by_the_server_user_only(client, settings):
    client.put("/Patient/p", json={"resourceType": "Patient", "id": "p"})
    path = settings.storage.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600, suffix


def test_admin_operations_can_be_switched_off(settings):
    with Client(build_app(replace(settings, admin_operations=False))) as client:
        response = client.post("/$reindex")
        assert response.status_code == 403
        assert response.json()["issue"][0]["code"] == "forbidden"


def test_the_rate_limit_answers_429_with_retry_after(settings):
    with Client(build_app(replace(settings, rate_limit=2))) as client:
        statuses = [client.get("/Patient").status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4 and statuses[-1] == 429  # a burst of twice the rate
        refused = client.get("/Patient")
        assert refused.json()["issue"][0]["code"] == "throttled"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.http_get("/health/live").status_code == 200  # not limited


def test_the_rate_limiter_refills_and_forgets():
    limiter = RateLimiter(1)
    limiter.check("a", now=0.0)
    limiter.check("a", now=0.0)
    with pytest.raises(TooManyRequests):
        limiter.check("a", now=0.1)
    limiter.check("b", now=0.1)  # another client has its own bucket
    limiter.check("a", now=1.2)  # refilled


@pytest.mark.volume
def test_a_search_past_its_deadline_is_too_costly(settings):
    with Client(build_app(replace(settings, search_timeout=1e-9))) as client:
        client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "name": [{"text": f"病人{n}"}]},
             "request": {"method": "POST", "url": "Patient"}} for n in range(3000)]})
        response = client.get("/Patient", params={"name:contains": "人9", "_total": "accurate"})
        assert response.status_code == 422
        assert response.json()["issue"][0]["code"] == "too-costly"
        assert client.get("/Patient/nobody").status_code == 404  # the worker is fine


def test_a_body_that_stalls_is_answered_408(settings):
    app = build_app(replace(settings, read_timeout=0.2))
    sent: list[dict] = []

    async def run() -> None:
        await app.startup()  # type: ignore[union-attr]
        messages = [{"type": "http.request", "body": b'{"resourceType":', "more_body": True}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.sleep(10)  # the client stops sending
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        await app({"type": "http", "method": "POST", "path": "/fhir/Patient",
                   "query_string": b"", "headers": [(b"content-type", b"application/fhir+json")],
                   "scheme": "http"}, receive, send)
        await app.shutdown()  # type: ignore[union-attr]

    asyncio.run(run())
    assert sent[0]["status"] == 408
