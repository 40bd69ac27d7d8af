"""The FHIRPath invariants of the R4 core, compiled: each one on the type or element it is
defined on, with FHIRPath's rules for empty results, choice types and date precision."""

from __future__ import annotations

import pytest

from fhir_server.validation.fhirpath_compiler import Env, NotCompiled, compile_fhirpath
from fhir_server.validation.structure import StructureValidator, core_invariants

VALIDATOR = StructureValidator()


def broken(resource: dict) -> list[tuple[str, str | None, str]]:
    return [(i.diagnostics.split(":")[0], i.expression, i.severity)
            for i in VALIDATOR.validate(resource) if i.code == "invariant"]


def period(start: str, end: str) -> dict:
    return {"resourceType": "Patient", "name": [{"family": "张", "period": {
        "start": start, "end": end}}]}


def observation(**elements: object) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "血糖"},
            **elements}


@pytest.mark.parametrize(("resource", "expected"), [
    (period("2020-01-02", "2020-01-01"), [("per-1", "Patient.name[0].period", "error")]),
    (period("2020-01-01", "2020-01-02"), []),
    (period("2020-01", "2020-01-01"), []),  # different precisions: uncertain, no finding
    (period("2020-01-01T10:00:00+08:00", "2020-01-01T03:00:00Z"), []),  # 02:00Z < 03:00Z
    (period("2020-01-01T12:00:00+08:00", "2020-01-01T03:00:00Z"),
     [("per-1", "Patient.name[0].period", "error")]),
    (observation(valueQuantity={"value": 1, "code": "mg"}),
     [("qty-3", "Observation.valueQuantity", "error")]),
    (observation(valueString="阴性", dataAbsentReason={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "code": "unknown"}]}), [("obs-6", "Observation", "error")]),
    (observation(valueString="x", component=[{"code": {"text": "血糖"}, "valueString": "y"}]),
     []),
    ({"resourceType": "Patient", "telecom": [{"value": "13800000000"}]},
     [("cpt-2", "Patient.telecom[0]", "error")]),
    ({"resourceType": "Patient", "managingOrganization": {"reference": "#missing"}},
     [("ref-1", "Patient.managingOrganization", "error")]),
    ({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o",
                                                "name": "社区卫生服务中心"}]},
     [("dom-3", "Patient", "error")]),
    ({"resourceType": "Patient", "managingOrganization": {"reference": "#o"},
      "contained": [{"resourceType": "Organization", "id": "o", "name": "社区卫生服务中心"}]},
     []),
    ({"resourceType": "Patient", "managingOrganization": {"reference": "#o"},
      "contained": [{"resourceType": "Organization", "id": "o", "name": "卫生院",
                     "meta": {"versionId": "1"}}]},
     [("dom-4", "Patient", "error")]),
    ({"resourceType": "Patient", "contact": [{"gender": "female"}]},
     [("pat-1", "Patient.contact[0]", "error")]),
    # a choice element's type: answer[x] is a Boolean only as answerBoolean
    ({"resourceType": "Questionnaire", "status": "draft", "item": [{
        "linkId": "1", "type": "boolean", "enableWhen": [
            {"question": "0", "operator": "exists", "answerString": "x"}]}]},
     [("que-7", "Questionnaire.item[0].enableWhen[0]", "error")]),
    ({"resourceType": "Questionnaire", "status": "draft", "item": [{
        "linkId": "1", "type": "boolean", "enableWhen": [
            {"question": "0", "operator": "exists", "answerBoolean": True}]}]}, []),
    ({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p"},
      "prediction": [{"probabilityDecimal": 150}]},
     [("ras-2", "RiskAssessment.prediction[0]", "error")]),
    # an invariant on an element, not its type: ElementDefinition.max (eld-3)
    ({"resourceType": "StructureDefinition", "url": "http://a.cn/sd", "name": "A",
      "status": "draft", "kind": "logical", "abstract": True, "type": "A",
      "differential": {"element": [{"id": "A", "path": "A", "max": "-1"}]}},
     [("eld-3", "StructureDefinition.differential.element[0].max", "error")]),
    # an invariant of warning severity stays a warning
    ({"resourceType": "Patient", "contact": [{"name": {"text": "李四"}}],
      "text": {"status": "generated",
               "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
      "meta": {"security": [{"system": "http://a.cn", "code": "x"}]}}, []),
])
def test_core_invariants(resource, expected):
    assert broken(resource) == expected


def test_three_valued_logic_and_empty_results():
    def run(expression: str, focus: dict) -> list:
        return compile_fhirpath(expression)(Env(focus, focus, focus), [focus])
    assert run("a.exists() and b.exists()", {"a": 1}) == [False]
    assert run("a = 1 and b = 2", {"a": 1}) == []  # empty = unknown
    assert run("a = 1 or b = 2", {"a": 1}) == [True]
    assert run("(a = 2) implies (b = 2)", {"a": 1}) == [True]
    assert run("a = 1 xor b = 1", {"a": 1, "b": 1}) == [False]
    assert run("a.count() + b.count() <= 1", {"a": [1, 2]}) == [False]
    assert run("a.where($this > 1).count()", {"a": [1, 2]}) == [1]
    assert run("a.isDistinct() and ('x' in a.combine('y'))", {"a": ["x", "z"]}) == [True]
    assert run("iif(a.exists(), 'yes', 'no')", {}) == ["no"]
    assert run("a.matches('^[0-9]+$')", {"a": "123"}) == [True]
    assert run("a.substring(1) & '-' & b.toString()", {"a": "#ab", "b": 3}) == ["ab-3"]


def test_what_is_not_compiled_is_listed():
    with pytest.raises(NotCompiled):
        compile_fhirpath("member.resolve()")
    assert ("CareTeam.participant", "ctm-1", "resolve()") in core_invariants().not_evaluated
    assert len(core_invariants().not_evaluated) <= 2
