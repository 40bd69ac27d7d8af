"""The wheel carries what it enforces: built, installed into a fresh virtualenv, and run from
an empty directory, the server keeps every alliance rule, with and without ``--demo``.

The virtualenv is made without this environment's site-packages (whose editable install of
the checkout would shadow the wheel); the wheel's dependencies are taken from here through
a plain path entry, so no network is needed and nothing of the checkout is importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ALLIANCE = "http://alliance-fhir.org/fhir"
PATIENT_PROFILE = f"{ALLIANCE}/StructureDefinition/AlliancePatient"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtualenv holding only the built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy: the build leaves build/ and egg-info behind
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "*.db*", "build", "*.egg-info", "__pycache__", ".*_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(work / "dist"), str(source)], check=True)
    [wheel] = (work / "dist").glob("*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
         "'purelib'))"], check=True, capture_output=True, text=True).stdout.strip())
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "zz-dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheel)], check=True)
    return venv / "bin"


def run(bin: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin / "alliance-fhir"), *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def test_the_wheel_holds_no_checkout_path(installed, tmp_path):
    where = subprocess.run([str(installed / "python"), "-c", "import fhir_server; "
                            "print(fhir_server.__file__)"], cwd=tmp_path, check=True,
                           capture_output=True, text=True).stdout
    assert str(installed.parent) in where and str(ROOT) not in where


def test_validate_keeps_the_profiles(installed, tmp_path):
    bad = tmp_path / "bad.json"
    shutil.copy(ROOT / "examples" / "invalid" / "invalid-profile-patient-without-gender.json",
                bad)
    result = run(installed, tmp_path, "validate", str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "errors" in result.stdout and "Patient.gender" in result.stdout


def _checks_the_alliance_rules(base: str) -> None:
    without_gender = httpx.post(f"{base}/Patient", json={
        "resourceType": "Patient", "meta": {"profile": [PATIENT_PROFILE]},
        "name": [{"text": "王五"}]})
    assert without_gender.status_code == 422, without_gender.text
    profiles = httpx.get(f"{base}/StructureDefinition", params={"url": PATIENT_PROFILE}).json()
    assert profiles["total"] == 1
    lookup = httpx.get(f"{base}/CodeSystem/$lookup", params={
        "system": f"{ALLIANCE}/CodeSystem/institution-type", "code": "A100"})
    assert lookup.status_code == 200 and "综合医院" in lookup.text
    pinyin = httpx.get(f"{base}/Patient", params={"name-pinyin": "zs"})
    assert pinyin.status_code == 200
    assert "name-pinyin=zs" in pinyin.json()["link"][0]["url"]  # not dropped


def test_serve_keeps_the_alliance_rules(installed, tmp_path):
    server = ServerProcess(tmp_path / "bare.db", command=(str(installed / "alliance-fhir"),),
                           cwd=tmp_path)
    try:
        _checks_the_alliance_rules(server.base)
        assert httpx.get(f"{server.base}/Patient").json()["total"] == 0
        for page in ("swagger-ui/", "swagger-ui/swagger-init.js",
                     "swagger-ui/swagger-ui-bundle.js", "api-docs"):
            assert httpx.get(f"{server.base}/{page}").status_code == 200, page
    finally:
        server.stop()


def test_serve_demo_from_the_wheel(installed, tmp_path):
    server = ServerProcess(tmp_path / "demo.db", "--demo",
                           command=(str(installed / "alliance-fhir"),), cwd=tmp_path)
    try:
        _checks_the_alliance_rules(server.base)
        found = httpx.get(f"{server.base}/Patient", params={"name-pinyin": "zs"}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == ["zhang-san"]
        kpis = httpx.get(f"{server.base}/$referral-kpis", params={"period": "2026-11"})
        assert len(kpis.json()["entry"]) == 5  # the Measure and the rules came with it
        root = server.base.removesuffix("/fhir")
        for page in ("dashboard", "dashboard/dashboard.js", "dashboard/echarts.min.js"):
            assert httpx.get(f"{root}/{page}").status_code == 200, page
    finally:
        server.stop()


@pytest.mark.parametrize("setting", ["FHIR_PROFILES_DIR", "FHIR_TERMINOLOGY_DIR"])
def test_a_missing_package_folder_stops_start_up(installed, tmp_path, setting):
    result = run(installed, tmp_path, "serve", "--storage", f"sqlite:///{tmp_path / 'x.db'}",
                 **{setting: str(tmp_path / "nowhere")})
    assert result.returncode != 0
    assert "cannot start" in result.stderr and str(tmp_path / "nowhere") in result.stderr


def test_a_broken_package_file_is_named(installed, tmp_path):
    folder = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", folder)
    (folder / "StructureDefinition-AlliancePatient.json").write_text("{broken")
    result = run(installed, tmp_path, "validate", str(folder / "package.json"),
                 FHIR_PROFILES_DIR=str(folder))
    assert result.returncode != 0
    assert "StructureDefinition-AlliancePatient.json" in result.stderr
