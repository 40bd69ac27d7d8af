"""The structure validator on its own: primitives, choice types, companions, depth."""

from __future__ import annotations

import pytest

from fhir_server.validation.structure import StructureValidator

VALIDATOR = StructureValidator()


def issues(resource: dict) -> list[tuple[str, str | None]]:
    return [(i.code, i.expression) for i in VALIDATOR.validate(resource)]


@pytest.mark.parametrize(("element", "value", "ok"), [
    ("birthDate", "1958", True),
    ("birthDate", "1958-03", True),
    ("birthDate", "1958-03-14", True),
    ("birthDate", "1958-3-14", False),
    ("birthDate", "1958-03-14T10:00:00Z", False),
    ("deceasedDateTime", "2020-01-01T10:00:00+08:00", True),
    ("deceasedDateTime", "2020-01-01T10:00:00", False),
    ("deceasedDateTime", "2020-01-01T25:00:00Z", False),
    ("active", True, True),
    ("active", "true", False),
    ("multipleBirthInteger", 2, True),
    ("multipleBirthInteger", 2.5, False),
    ("multipleBirthInteger", True, False),
    ("multipleBirthInteger", 2**31, False),
    ("language", "zh-CN", True),
    ("language", " zh", False),
    ("implicitRules", "http://example.org/rules", True),
    ("implicitRules", "has space", False),
])
def test_primitive_formats(element, value, ok):
    found = issues({"resourceType": "Patient", element: value})
    assert (found == []) is ok, found
    if not ok:
        assert found[0][1] == f"Patient.{element}"


def test_base64_is_checked_in_linear_time():
    big = "QUJD" * 500_000
    photo = {"resourceType": "Patient", "photo": [{"contentType": "image/png", "data": big}]}
    assert issues(photo) == []
    photo["photo"][0]["data"] = big + "!"
    assert issues(photo) == [("value", "Patient.photo[0].data")]


def test_primitive_extensions_and_alignment():
    resource = {"resourceType": "Patient", "name": [{"given": ["三", None],
                                                     "_given": [None, {"id": "g2"}]}],
                "_birthDate": {"extension": [{"url": "http://x", "valueString": "约"}]}}
    assert issues(resource) == []
    resource["name"][0]["_given"] = [None]
    assert issues(resource) == [("value", "Patient.name[0].given[1]"),
                                ("structure", "Patient.name[0]._given")]


def test_contained_and_choice_and_backbone():
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "contained": [{"resourceType": "Patient", "id": "p"}],
                "subject": {"reference": "#p"},
                "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 1}}]}
    assert issues(resource) == []
    resource["component"][0]["valueFoo"] = 1
    assert issues(resource) == [("structure", "Observation.component[0].valueFoo")]


def test_wrong_expected_type_and_non_object():
    assert VALIDATOR.validate({"resourceType": "Patient"}, "Observation")[0].code == "invalid"
    assert VALIDATOR.validate([1])[0].code == "structure"


def test_too_deep_nesting():
    item: dict = {"linkId": "leaf", "type": "display"}
    for depth in range(80):
        item = {"linkId": str(depth), "type": "group", "item": [item]}
    found = issues({"resourceType": "Questionnaire", "status": "draft", "item": [item]})
    assert found and found[0][0] == "too-costly"


def test_a_time_without_a_zone_is_named():
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "effectiveDateTime": "2026-11-12T08:30:00"}
    [issue] = VALIDATOR.validate(observation)
    assert issue.expression == "Observation.effectiveDateTime"
    assert "needs its zone" in issue.diagnostics and "+08:00" in issue.diagnostics
