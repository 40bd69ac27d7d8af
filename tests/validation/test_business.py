"""Alliance identifier rules: check characters and birth dates, on write, $validate and CLI."""

from __future__ import annotations

import orjson
import pytest

from fhir_server.cli import main
from fhir_server.validation.business import ID_CARD_SYSTEM, USCC_SYSTEM, business_rules
from fhir_server.validation.identifiers import id_card_valid, uscc_valid


def org(code: str) -> dict:
    return {"resourceType": "Organization", "identifier": [{"system": USCC_SYSTEM,
                                                            "value": code}]}


def patient(number: str, born: str | None = None) -> dict:
    resource = {"resourceType": "Patient",
                "identifier": [{"system": "http://x/mrn", "value": "1"},
                               {"system": ID_CARD_SYSTEM, "value": number}]}
    if born:
        resource["birthDate"] = born
    return resource


@pytest.mark.parametrize(("code", "ok"), [
    ("11500000MB1670604W", True), ("12330000470051726F", True),
    ("12330000470051726E", False), ("12330000470051726", False), ("I2330000470051726F", False)])
def test_unified_social_credit_code(code, ok):
    assert uscc_valid(code) is ok
    issues = business_rules(org(code))
    assert (issues == []) is ok
    if not ok:
        assert issues[0].expression == "Organization.identifier[0].value"
        assert "统一社会信用代码" in issues[0].diagnostics


@pytest.mark.parametrize(("number", "born", "expression"), [
    ("11010519491231002X", "1949-12-31", None),
    ("11010519491231002X", None, None),
    ("11010519491231002X", "1949", None),
    ("110105194912310021", None, "Patient.identifier[1].value"),
    ("11010519491231002X", "1950-01-01", "Patient.birthDate"),
    ("11010519491331002" + "5", None, "Patient.identifier[1].value"),
])
def test_resident_id(number, born, expression):
    issues = business_rules(patient(number, born))
    assert [i.expression for i in issues] == ([expression] if expression else [])


def test_rules_answer_422_on_write_and_show_in_validate(client):
    bad = client.post("/Patient", json=patient("110105194912310021"))
    assert bad.status_code == 422
    assert bad.json()["issue"][0]["code"] == "business-rule"
    assert client.post("/Organization", json=org("12330000470051726F")).status_code == 201
    report = client.post("/Patient/$validate", json=patient("11010519491231002X", "1950-01-01"))
    assert report.status_code == 200
    assert report.json()["issue"][0]["expression"] == ["Patient.birthDate"]
    wrapped = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": patient("11010519491231002X", "1949-12-31")}]}
    ok = client.post("/Patient/$validate", json=wrapped).json()
    assert ok["issue"][0]["severity"] == "information"
    structure = client.post("/Patient/$validate", json={"resourceType": "Patient", "x": 1})
    assert structure.json()["issue"][0]["expression"] == ["Patient.x"]
    assert client.post("/Patient/p9/$validate?mode=delete").status_code == 404
    assert client.post("/Patient/$validate?mode=bogus",
                       json=patient("11010519491231002X")).status_code == 400


def test_validate_command(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": org("11500000MB1670604W")},
        {"resource": patient("11010519491231002X", "1949-12-31")}]}))
    assert main(["validate", str(good)]) == 0
    assert f"{good}: valid" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(org("12330000470051726E")))
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: errors" in out and "Organization.identifier[0].value" in out
    assert id_card_valid("11010519491231002X")
