"""The dashboard in a real headless Chromium (Debian's, driven by Playwright for Python) on a
real server with the demo alliance: no console errors, every member and its figures, the
charts drawn, no horizontal scrolling at 1366×768, English on the button. A screenshot is
kept in ``test-artifacts/``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def chromium() -> str:
    """Debian's chromium, installed by the project's script when missing."""
    if shutil.which("chromium") is None:
        subprocess.run([str(ROOT / "scripts" / "install_browser.sh")], check=False)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Debian's chromium is not installed (scripts/install_browser.sh)")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path_factory.mktemp("dashboard") / "demo.db", "--demo")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server: ServerProcess) -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        opened = browser.new_page(viewport={"width": 1366, "height": 768})
        opened.errors = []
        opened.on("console", lambda m: opened.errors.append(m.text) if m.type == "error"
                  else None)
        opened.on("pageerror", lambda e: opened.errors.append(str(e)))
        opened.goto(server.base.removesuffix("/fhir") + "/dashboard?period=2026-11")
        opened.wait_for_selector("#members tbody tr")
        opened.wait_for_selector("#status:empty", state="attached")
        yield opened
        browser.close()


def test_the_page_shows_every_member_and_the_charts(server, page):
    members = httpx.get(f"{server.base}/$referral-kpis", params={"period": "2026-11"}).json()
    names = {}
    for entry in members["entry"]:
        reference = entry["resource"]["subject"]["reference"]
        names[reference] = httpx.get(f"{server.base}/{reference}").json()["name"]
    rows = page.locator("#members tbody tr")
    assert rows.count() == len(names) == 5
    shown = page.inner_text("#members")
    assert all(name in shown for name in names.values())
    assert "渝北区人民医院" in shown and "上转" in shown
    for chart in ("#trend", "#flow"):
        assert page.locator(f"{chart} canvas").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert page.errors == []


def test_the_page_speaks_english_on_request(page):
    page.click("#language")
    page.wait_for_selector("#title:has-text('dashboard')")
    page.wait_for_selector("#members th:has-text('Up sent')")
    page.wait_for_selector("#status:empty", state="attached")
    assert "Upward" in page.inner_text("#trend-title")
    assert page.errors == []


def test_the_assets_are_served_by_the_server_itself(server):
    root = server.base.removesuffix("/fhir")
    page = httpx.get(f"{root}/dashboard")
    assert page.status_code == 200 and "http" not in page.text.split("<script", 1)[1]
    script = httpx.get(f"{root}/dashboard/echarts.min.js")
    assert script.status_code == 200 and len(script.content) > 500_000
