"""SMART Backend Services with real cryptography: registration, assertions, tokens, scopes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from smart import TOKEN_URL, BackendClient
from support import Client

from fhir_server.app import build_app
from fhir_server.auth import jwks
from fhir_server.cli import main
from fhir_server.config import Settings

PATIENT = {"resourceType": "Patient", "name": [{"family": "张"}]}


@pytest.fixture
def smart(settings: Settings, tmp_path: Path) -> Iterator[tuple[Client, Settings]]:
    secured = replace(settings, auth="smart")
    with Client(build_app(secured)) as client:
        yield client, secured


def token(client: Client, backend: BackendClient, scope: str | None = "system/*.rs",
          **assertion: object) -> str:
    answer = client.post(TOKEN_URL, data=backend.form(scope, **assertion))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert len(answer.headers.get_list("x-request-id")) == 1  # headers are not shared
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    return body["access_token"]


def bearer(access_token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {access_token}"}


def test_discovery_and_capabilities_stay_public(smart):
    client, _ = smart
    for url in ("http://testserver/.well-known/smart-configuration",
                "/.well-known/smart-configuration"):
        config = client.get(url).json()
        assert config["token_endpoint"] == TOKEN_URL
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384",
                                                                                   "ES384"}
        assert "client-confidential-asymmetric" in config["capabilities"]
    statement = client.get("/metadata").json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert security["extension"][0]["extension"][0]["valueUri"] == TOKEN_URL
    keys = client.get("http://testserver/auth/jwks").json()["keys"]
    assert keys and "d" not in keys[0]


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_a_registered_client_gets_a_token_that_opens_the_api(smart, tmp_path, algorithm):
    client, settings = smart
    backend = BackendClient("authority", algorithm)
    backend.register(settings.storage, tmp_path, "system/*.rs system/Patient.cruds")
    access = token(client, backend, "system/Patient.cruds system/Observation.rs")
    created = client.post("/Patient", json=PATIENT, headers=bearer(access))
    assert created.status_code == 201
    assert client.get(f"/Patient/{created.json()['id']}", headers=bearer(access)).status_code \
        == 200
    assert client.get("/Observation?code=x", headers=bearer(access)).status_code == 200
    refused = client.get("/Encounter", headers=bearer(access))  # not asked for
    assert refused.status_code == 403
    assert "Encounter.s" in refused.json()["issue"][0]["diagnostics"]


def test_without_a_valid_token_every_fhir_endpoint_answers_401(smart, tmp_path):
    client, settings = smart
    backend = BackendClient("lab")
    backend.register(settings.storage, tmp_path, "system/*.read")
    access = token(client, backend)
    for headers in ({}, {"authorization": "Basic abc"}, bearer("not.a.token"),
                    bearer(access[:-4] + "AAAA"), bearer(backend.assertion())):
        answer = client.get("/Patient", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer ")
        assert answer.json()["resourceType"] == "OperationOutcome"
    for method, url in (("POST", "/Patient"), ("GET", "/Patient/x/_history"), ("POST", "/"),
                        ("GET", "/_history"), ("DELETE", "/Patient/x")):
        assert client.request(method, url, json=PATIENT).status_code == 401, url


def test_an_expired_access_token_is_refused(smart, tmp_path):
    client, settings = smart
    backend = BackendClient("short")
    backend.register(settings.storage, tmp_path, "system/*.read")
    expired = replace(settings, token_lifetime=-120)
    with Client(build_app(expired)) as other:  # same storage, so same key and clients
        stale = token_via(other, backend)
    assert client.get("/Patient", headers=bearer(stale)).status_code == 401


def token_via(client: Client, backend: BackendClient) -> str:
    answer = client.post(TOKEN_URL, data=backend.form())
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_scopes_are_checked_per_interaction_and_per_transaction_entry(smart, tmp_path):
    client, settings = smart
    admin = BackendClient("admin")
    admin.register(settings.storage, tmp_path, "system/*.cruds")
    reader = BackendClient("reader")
    reader.register(settings.storage, tmp_path, "system/Patient.read system/Observation.rs")
    full = bearer(token(client, admin, "system/*.cruds"))
    created = client.put("/Patient/p1", json={**PATIENT, "id": "p1"}, headers=full)
    assert created.status_code == 201
    read_only = bearer(token(client, reader, "system/Patient.read system/Observation.rs"))
    assert client.get("/Patient/p1", headers=read_only).status_code == 200
    assert client.get("/Patient?name=张", headers=read_only).status_code == 200
    assert client.put("/Patient/p1", json={**PATIENT, "id": "p1"},
                      headers=read_only).status_code == 403
    assert client.delete("/Patient/p1", headers=read_only).status_code == 403
    assert client.get("/Patient?_revinclude=Encounter:subject",
                      headers=read_only).status_code == 403
    assert client.get("/?_type=Patient,Observation", headers=read_only).status_code == 200
    assert client.get("/", headers=read_only).status_code == 403  # every type
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    refused = client.post("/", json=bundle, headers=read_only)
    assert refused.status_code == 403 and "Observation.c" in refused.text
    assert client.get("/Observation", headers=full).json()["total"] == 0  # nothing written
    assert client.post("/", json=bundle, headers=full).status_code == 200
    batch = {**bundle, "type": "batch"}
    answered = client.post("/", json=batch, headers=read_only).json()
    statuses = [e["response"]["status"] for e in answered["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("403")


@pytest.mark.parametrize(("change", "error"), [
    ({"aud": "http://elsewhere/auth/token"}, "invalid_grant"),
    ({"exp_in": -600}, "invalid_grant"),
    ({"exp_in": 3600}, "invalid_grant"),
    ({"sub": "someone-else"}, "invalid_grant"),
    ({"algorithm": "RS256"}, "invalid_client"),
])
def test_bad_assertions_are_refused(smart, tmp_path, change, error):
    client, settings = smart
    backend = BackendClient("checked")
    backend.register(settings.storage, tmp_path, "system/*.read")
    answer = client.post(TOKEN_URL, data=backend.form(**change))
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] == error, answer.text
    assert answer.status_code == (401 if error == "invalid_client" else 400)


def test_replays_unregistered_keys_and_ungranted_scopes_are_refused(smart, tmp_path):
    client, settings = smart
    backend = BackendClient("careful")
    backend.register(settings.storage, tmp_path, "system/Patient.rs")
    form = backend.form("system/Patient.rs", jti="once")
    assert client.post(TOKEN_URL, data=form).status_code == 200
    replayed = client.post(TOKEN_URL, data=backend.form("system/Patient.rs", jti="once"))
    assert replayed.json()["error"] == "invalid_grant" and "jti" in replayed.text
    stranger = BackendClient("careful")  # same id, another key
    unregistered = client.post(TOKEN_URL, data=backend.form(key=stranger.key))
    assert unregistered.status_code == 401 and unregistered.json()["error"] == "invalid_client"
    unknown = client.post(TOKEN_URL, data=BackendClient("nobody").form())
    assert unknown.status_code == 401
    too_much = client.post(TOKEN_URL, data=backend.form("system/*.cruds"))
    assert too_much.status_code == 400 and too_much.json()["error"] == "invalid_scope"
    for bad in ({"grant_type": "password"}, {"client_assertion_type": "x"},
                {"client_assertion": "garbage"}):
        answer = client.post(TOKEN_URL, data={**backend.form(), **bad})
        assert answer.status_code in (400, 401) and answer.json()["error"]
    as_json = client.post(TOKEN_URL, json=backend.form())
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_token_issuance_and_refusal_are_audited(smart, tmp_path):
    client, settings = smart
    backend = BackendClient("audited")
    backend.register(settings.storage, tmp_path, "system/*.rs")
    access = bearer(token(client, backend))
    client.post(TOKEN_URL, data=backend.form(aud="http://wrong"))
    events = client.get("/AuditEvent?altid=audited", headers=access).json()
    outcomes = sorted(e["resource"]["outcome"] for e in events["entry"])
    assert outcomes == ["0", "4"]
    assert all(e["resource"]["type"]["code"] == "110114" for e in events["entry"])


def test_clients_are_managed_from_the_command_line_while_the_server_runs(smart, tmp_path,
                                                                        capsys):
    client, settings = smart
    backend = BackendClient("late")
    assert client.post(TOKEN_URL, data=backend.form()).status_code == 401
    backend.register(settings.storage, tmp_path, "system/*.rs")  # no restart
    assert client.post(TOKEN_URL, data=backend.form()).status_code == 200
    assert main(["clients", "list", "--storage", settings.storage]) == 0
    assert "late\tsystem/*.rs\t1 key(s)" in capsys.readouterr().out
    assert main(["clients", "remove", "late", "--storage", settings.storage]) == 0
    assert client.post(TOKEN_URL, data=backend.form()).status_code == 401
    assert main(["clients", "remove", "late", "--storage", settings.storage]) == 1
    path = tmp_path / "private.json"
    path.write_bytes(b'{"keys": [%s]}' % orjson.dumps(
        backend.key.as_dict(private=True)))
    assert main(["clients", "add", "x", "--jwks", str(path), "--scope", "system/*.rs",
                 "--storage", settings.storage]) == 2  # a private key is refused
    assert main(["clients", "add", "x", "--jwks", str(tmp_path / "late.jwks.json"),
                 "--scope", "user/*.rs", "--storage", settings.storage]) == 2


def test_auth_off_keeps_the_api_open_and_has_no_token_endpoint(client):
    assert client.get("/Patient").status_code == 200
    assert client.get("/.well-known/smart-configuration").status_code == 404
    assert client.post(TOKEN_URL, data={}).status_code == 404
    assert "security" not in client.get("/metadata").json()["rest"][0]


def test_keys_published_at_a_url_are_fetched_and_refetched_for_a_new_kid(smart, tmp_path,
                                                                         monkeypatch):
    client, settings = smart
    backend = BackendClient("published", "ES384")
    published = {"jwks": backend.public_jwks()}

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = orjson.dumps(published["jwks"])
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        assert main(["clients", "add", "published", "--jwks", url, "--scope", "system/*.rs",
                     "--storage", settings.storage]) == 0
        assert client.post(TOKEN_URL, data=backend.form()).status_code == 200
        rotated = BackendClient("published", "ES384")  # a new key, published at the URL
        published["jwks"] = rotated.public_jwks()
        monkeypatch.setattr(jwks, "REFETCH_AFTER", 0.0)  # (10 s between fetches)
        assert client.post(TOKEN_URL, data=rotated.form()).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_signing_key_is_kept_so_another_worker_accepts_the_token(smart, tmp_path):
    client, settings = smart
    backend = BackendClient("kept")
    backend.register(settings.storage, tmp_path, "system/*.rs")
    access = token(client, backend)
    with Client(build_app(settings)) as other:  # another worker, or after a restart
        assert other.get("/Patient", headers=bearer(access)).status_code == 200
