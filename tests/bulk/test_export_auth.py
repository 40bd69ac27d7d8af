"""$export behind SMART Backend Services: tokens, scopes, owners, de-identified clients,
and the AuditEvents of kick-off, download and cancel."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from bulk_support import ASYNC, finished, kick_off, lines
from smart import TOKEN_URL, BackendClient
from support import Client, load_demo

from fhir_server.app import build_app
from fhir_server.config import Settings


@pytest.fixture
def secured(tmp_path):
    settings = replace(Settings(storage=f"sqlite:///{tmp_path / 'secured.db'}"), auth="smart")
    load_demo(settings)
    with Client(build_app(settings)) as client:
        yield client, settings


def access(client: Client, backend: BackendClient, scope: str) -> dict[str, str]:
    answer = client.post(TOKEN_URL, data=backend.form(scope))
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def test_the_authority_exports_with_its_token_and_nobody_else_sees_the_job(secured, tmp_path):
    client, settings = secured
    authority = BackendClient("wjw", "ES384")
    authority.register(settings.storage, tmp_path, "system/*.rs")
    other = BackendClient("other")
    other.register(settings.storage, tmp_path, "system/*.rs")
    token = access(client, authority, "system/*.rs")
    assert client.get("/$export", headers=ASYNC).status_code == 401
    status = kick_off(client, "/Patient/$export", token)
    assert client.get(status).status_code == 401
    assert client.get(status, headers=access(client, other, "system/*.rs")).status_code == 404
    manifest = finished(client, status, token)
    assert manifest["requiresAccessToken"] is True
    assert client.get(manifest["output"][0]["url"]).status_code == 401
    rows = lines(client, manifest, token)
    assert any(b'"zhang-san"' in row for row in rows)
    events = client.get("/AuditEvent?agent-name=wjw&_count=100", headers=token).json()
    actions = sorted(e["resource"]["action"] for e in events["entry"]
                     if e["resource"]["type"]["code"] == "110106")
    assert actions == ["E"] + ["R"] * len(manifest["output"])
    job = status.rsplit("/", 1)[1]
    by_job = client.get(f"/AuditEvent?entity-name={job}", headers=token).json()
    assert by_job["total"] == len(actions)
    assert client.delete(status, headers=token).status_code == 202
    cancelled = client.get(f"/AuditEvent?entity-name={job}&action=D", headers=token).json()
    assert cancelled["total"] == 1


def test_scopes_limit_what_is_exported(secured, tmp_path):
    client, settings = secured
    lab = BackendClient("lab")
    lab.register(settings.storage, tmp_path, "system/Observation.rs system/Patient.rs")
    token = access(client, lab, "system/Observation.rs system/Patient.rs")
    refused = client.get("/$export?_type=Encounter", headers={**ASYNC, **token})
    assert refused.status_code == 403
    manifest = finished(client, kick_off(client, "/$export", token), token)
    assert {o["type"] for o in manifest["output"]} == {"Observation", "Patient"}


def test_a_de_identified_only_client_gets_nothing_else(secured, tmp_path):
    client, settings = secured
    stats = BackendClient("statistics")
    stats.register(settings.storage, tmp_path, "system/*.rs", "--deidentified-only")
    token = access(client, stats, "system/*.rs")
    assert client.get("/Patient/zhang-san", headers=token).status_code == 403
    manifest = finished(client, kick_off(client, "/Patient/$export", token), token)
    text = b"\n".join(lines(client, manifest, token))
    assert "张三".encode() not in text and b"500112195803140317" not in text
    assert all(len(orjson.loads(row)["id"]) == 40 for row in text.splitlines())
