"""Terminology operations over the alliance terminology."""

from __future__ import annotations

import asyncio

import pytest
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings
from fhir_server.loader import load_paths

BASE = "http://alliance-fhir.org/fhir"
DEPT = f"{BASE}/CodeSystem/department"


@pytest.fixture(scope="module")
def tx(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(storage=f"sqlite:///{tmp_path_factory.mktemp('tx') / 'tx.db'}")
    asyncio.run(load_paths(settings, []))  # the alliance package is installed on open
    with Client(build_app(settings)) as client:
        yield client


def value(parameters: dict, name: str) -> object:
    found = next(p for p in parameters["parameter"] if p["name"] == name)
    return next(v for k, v in found.items() if k.startswith("value"))


def test_lookup(tx):
    found = tx.get("/CodeSystem/$lookup", params={"system": DEPT, "code": "03.04"}).json()
    assert value(found, "display") == "心血管内科专业"
    parts = [p for p in found["parameter"] if p["name"] == "property"]
    assert parts[0]["part"][1]["valueCode"] == "03"
    assert tx.get("/CodeSystem/$lookup", params={"system": DEPT, "code": "99"}).status_code \
        == 404
    assert tx.get("/CodeSystem/$lookup", params={"code": "03"}).status_code == 400


def test_validate_code_and_subsumes(tx):
    ok = tx.get("/CodeSystem/$validate-code", params={"url": DEPT, "code": "03.01"}).json()
    assert value(ok, "result") is True
    wrong = tx.get("/CodeSystem/$validate-code",
                   params={"url": DEPT, "code": "03.01", "display": "外科"}).json()
    assert value(wrong, "result") is False
    assert value(tx.get("/CodeSystem/$subsumes", params={
        "system": DEPT, "codeA": "03", "codeB": "03.02"}).json(), "outcome") == "subsumes"
    assert value(tx.get("/CodeSystem/$subsumes", params={
        "system": DEPT, "codeA": "04.01", "codeB": "03"}).json(), "outcome") == "not-subsumed"


def test_expand_with_chinese_and_pinyin_filters(tx):
    url = f"{BASE}/ValueSet/department"
    everything = tx.get("/ValueSet/$expand", params={"url": url}).json()["expansion"]
    assert everything["total"] > 20
    for needle in ("内科", "nk", "neike", "Internal", "03"):
        found = tx.get("/ValueSet/$expand", params={"url": url, "filter": needle}).json()
        codes = [c["code"] for c in found["expansion"]["contains"]]
        assert "03" in codes, needle
    page = tx.get("/ValueSet/$expand", params={"url": url, "count": 5, "offset": 5}).json()
    assert len(page["expansion"]["contains"]) == 5 and page["expansion"]["offset"] == 5
    ethnic = tx.post("/ValueSet/ethnicity/$expand", json={
        "resourceType": "Parameters", "parameter": [{"name": "filter", "valueString": "zhuang"}]})
    assert [c["display"] for c in ethnic.json()["expansion"]["contains"]] == ["壮族"]
    assert tx.get("/ValueSet/$expand", params={"url": "http://x"}).status_code == 400


def test_value_set_validate_code_and_translate(tx):
    url = f"{BASE}/ValueSet/institution-type"
    assert value(tx.get("/ValueSet/$validate-code",
                        params={"url": url, "code": "A210"}).json(), "result") is True
    assert value(tx.get("/ValueSet/$validate-code",
                        params={"url": url, "code": "Z999"}).json(), "result") is False
    mapped = tx.get("/ConceptMap/$translate", params={
        "url": f"{BASE}/ConceptMap/sex-to-gender", "code": "2"}).json()
    assert value(mapped, "result") is True
    match = next(p for p in mapped["parameter"] if p["name"] == "match")
    assert match["part"][1]["valueCoding"]["code"] == "female"
    assert tx.get("/Patient/$expand").status_code == 400
