"""The alliance SearchParameters over the demo alliance: referral direction, HR mark,
division code, pinyin names."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("url", "expected"), [
    ("ServiceRequest?direction=up", ["ref-up-1", "ref-up-2"]),
    ("ServiceRequest?direction=down", ["ref-down-1"]),
    ("ServiceRequest?direction=up&priority=stat", ["ref-up-2"]),  # green channel 绿色通道
    ("Observation?hr-mark=HR", ["liu-mei-glu", "liu-mei-k", "zhang-san-alb", "zhang-san-tc"]),
    ("DiagnosticReport?hr-mark=http://alliance-fhir.org/fhir/CodeSystem/result-recognition|HR",
     ["huang-wei-ct-review", "liu-mei-chem", "zhang-san-chem", "zhang-san-ct-review"]),
    ("DiagnosticReport?hr-mark:missing=true", ["zhang-san-ct-report"]),
    ("DiagnosticReport?subject=zhang-san&_revinclude=Provenance:target", [
        "zhang-san-chem", "zhang-san-ct-report", "zhang-san-ct-review",
        "zhang-san-ct-review-provenance"]),
    ("Patient?division=500112", ["he-lan", "liu-mei", "zhang-san"]),
    ("Patient?division=420921", ["huang-wei"]),
    ("Practitioner?name-pinyin=ljg", ["li-jianguo"]),
    ("Organization?name-pinyin=yubei", ["lead", "lead-cardiology", "lead-imaging", "tcm"]),
    ("Organization?name-pinyin=ybq", ["lead", "lead-cardiology", "lead-imaging", "tcm"]),
    ("Patient/zhang-san/ServiceRequest?direction=up", ["ref-up-1"]),
])
def test_alliance_parameters(demo, url, expected):
    response = demo.get("/" + url)
    assert response.status_code == 200, response.text
    assert sorted(e["resource"]["id"] for e in response.json().get("entry", [])) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("Patient?_sort=name-pinyin", ["he-lan", "huang-wei", "liu-mei", "zhang-san"]),
    ("Patient?_sort=-name-pinyin", ["zhang-san", "liu-mei", "huang-wei", "he-lan"]),
    ("Patient?_sort=name", ["he-lan", "liu-mei", "zhang-san", "huang-wei"]),  # code points
])
def test_names_sort_by_their_text_and_pinyin(demo, url, expected):
    """A name sorts by its text (何兰 helan, 黄伟 huangwei, 刘梅 liumei, 张三 zhangsan):
    ``name-pinyin`` in pinyin order (按拼音排序), ``name`` in code point order."""
    response = demo.get("/" + url)
    assert [e["resource"]["id"] for e in response.json()["entry"]] == expected
