"""A bulk client nobody here wrote, ``smart-fetch`` (PyPI), against a real server process
with SMART Backend Services on: it discovers the token endpoint, signs its assertion,
kicks off, polls and downloads; what it gets equals what the server stores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc.jwk import RSAKey
from server_process import ServerProcess
from smart import BackendClient

from fhir_server.cli import main

SMART_FETCH = shutil.which("smart-fetch", path=os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def key_files(folder: Path) -> Path:
    """A key pair in the form smart-fetch reads (a JWKS whose key may ``sign``); the
    public half is registered with the server."""
    key = RSAKey.generate_key(2048, auto_kid=True)
    private = {**key.as_dict(private=True), "alg": "RS384", "key_ops": ["sign"]}
    public = {**key.as_dict(private=False), "alg": "RS384", "key_ops": ["verify"]}
    (folder / "public.jwks").write_bytes(orjson.dumps({"keys": [public]}))
    (folder / "private.jwks").write_bytes(orjson.dumps({"keys": [private]}))
    return folder / "private.jwks"


@pytest.mark.skipif(SMART_FETCH is None, reason="smart-fetch is a test dependency")
def test_smart_fetch_exports_the_system_and_a_group(tmp_path):
    db = tmp_path / "fetched.db"
    storage = f"sqlite:///{db}"
    private = key_files(tmp_path)
    assert main(["clients", "add", "smart-fetch", "--jwks", str(tmp_path / "public.jwks"),
                 "--scope", "system/*.rs", "--storage", storage]) == 0
    writer = BackendClient("writer")
    writer.register(storage, tmp_path, "system/*.cruds")
    server = ServerProcess(db, "--demo", "--auth", "smart")
    try:
        token_url = server.base.removesuffix("/fhir") + "/auth/token"
        token = httpx.post(token_url, data=writer.form("system/*.cruds", aud=token_url),
                           timeout=10).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        group = {"resourceType": "Group", "id": "elderly", "type": "person", "actual": True,
                 "member": [{"entity": {"reference": "Patient/he-lan"}}]}
        assert httpx.put(f"{server.base}/Group/elderly", json=group, headers=headers,
                         timeout=10).status_code == 201

        def fetch(out: Path, *extra: str) -> dict[str, list[bytes]]:
            done = subprocess.run(
                [str(SMART_FETCH), "bulk", "--fhir-url", server.base, "--smart-client-id",
                 "smart-fetch", "--smart-key", str(private), "--no-compression",
                 "--type", "Patient,Observation,Condition", *extra, str(out)],
                capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            return {f.name.split(".")[0]: f.read_bytes().splitlines()
                    for f in out.glob("*.ndjson") if f.name != "log.ndjson"}

        everything = fetch(tmp_path / "all")
        assert set(everything) == {"Patient", "Observation", "Condition"}
        for rtype, rows in everything.items():
            total = httpx.get(f"{server.base}/{rtype}?_summary=count", headers=headers,
                              timeout=10).json()["total"]
            assert len(rows) == total or rtype == "Observation"  # a default category filter
            for row in rows:
                id = orjson.loads(row)["id"]
                assert httpx.get(f"{server.base}/{rtype}/{id}", headers=headers,
                                 timeout=10).content == row
        grouped = fetch(tmp_path / "group", "--group", "elderly")
        patients = [orjson.loads(r)["id"] for r in grouped["Patient"]]
        assert patients == ["he-lan"]
        assert all(orjson.loads(r)["subject"]["reference"] == "Patient/he-lan"
                   for r in grouped.get("Condition", []) + grouped.get("Observation", []))
    finally:
        server.stop()
