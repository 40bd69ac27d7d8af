"""Alliance resource profiles enforced through meta.profile."""

from __future__ import annotations

from support import Client

from fhir_server.app import build_app
from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.package import AlliancePackage
from fhir_server.validation.check import Checks

BASE = "http://alliance-fhir.org/fhir"
SETTINGS = Settings()
PACKAGE = AlliancePackage.load(SETTINGS)
VALIDATOR = Checks.from_package(PACKAGE.profiles, PACKAGE.terminology).profiles


def org(**fields: object) -> dict:
    return {"resourceType": "Organization", "name": "某医院",
            "meta": {"profile": [f"{BASE}/StructureDefinition/AllianceOrganization"]},
            "type": [{"coding": [{"system": f"{BASE}/CodeSystem/institution-type",
                                  "code": "A100"}]}], **fields}


def found(resource: dict) -> list[tuple[str, str | None, str]]:
    assert VALIDATOR is not None
    return [(i.severity, i.expression, i.code) for i in VALIDATOR.validate(resource)]


def test_a_conforming_resource_passes():
    assert found(org()) == []


def test_cardinality_and_slices():
    nameless = {k: v for k, v in org().items() if k != "name"}
    assert found(nameless) == [("error", "Organization.name", "required")]
    two = org(identifier=[{"system": f"{BASE}/sid/uscc", "value": "11500000MB1670604W"},
                          {"system": f"{BASE}/sid/uscc", "value": "12330000470051726F"}])
    assert found(two) == [("error", "Organization.identifier:uscc", "structure")]


def test_extensible_binding_warns():
    other = org(type=[{"coding": [{"system": "http://x", "code": "hospital"}]}])
    assert found(other) == [("warning", "Organization.type", "code-invalid")]


def test_a_code_its_complete_code_system_lacks_is_an_error_under_any_binding():
    wrong = org(type=[{"coding": [{"system": f"{BASE}/CodeSystem/institution-type",
                                   "code": "Z999"}]}])  # the binding is extensible
    assert found(wrong) == [("error", "Organization.type", "code-invalid")]
    issue = VALIDATOR.validate(wrong)[0]  # type: ignore[union-attr]
    assert "Z999 is not a code of" in issue.diagnostics


def test_a_missing_loinc_coding_names_the_concept_map_that_translates():
    lab = {"resourceType": "Observation", "status": "final", "meta": {"profile": [
        f"{BASE}/StructureDefinition/AllianceLabResult"]},
           "code": {"coding": [{"system": f"{BASE}/CodeSystem/lis-county", "code": "GLU"}]}}
    [issue] = [i for i in VALIDATOR.validate(lab)  # type: ignore[union-attr]
               if i.expression == "Observation.code.coding:loinc"]
    assert "http://loinc.org" in issue.diagnostics
    assert f"{BASE}/ConceptMap/lis-county-to-loinc" in issue.diagnostics
    assert "http://loinc.org|2345-7" in issue.diagnostics


def test_profiles_apply_only_when_claimed_and_unknown_ones_warn():
    plain = {k: v for k, v in org().items() if k not in ("meta", "name")}
    assert found(plain) == []
    unknown = org(meta={"profile": [f"{BASE}/StructureDefinition/Nothing"]})
    assert found(unknown) == [("warning", "meta.profile", "not-supported")]


def test_required_profiles(tmp_path, capsys):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'p.db'}", require_profiles="Patient")
    with Client(build_app(settings)) as client:
        plain = client.post("/Patient", json={"resourceType": "Patient", "gender": "male"})
        assert plain.status_code == 422
        assert plain.json()["issue"][0]["expression"] == ["Patient.meta.profile"]
        claimed = {"resourceType": "Patient", "gender": "male", "name": [{"text": "王五"}],
                   "meta": {"profile": [f"{BASE}/StructureDefinition/AlliancePatient"]}}
        assert client.post("/Patient", json=claimed).status_code == 201
        assert client.post("/Organization", json=org()).status_code == 201
    plain_file = tmp_path / "plain.json"
    plain_file.write_text('{"resourceType": "Patient", "gender": "male"}')
    assert main(["validate", str(plain_file)]) == 0
    profile = f"{BASE}/StructureDefinition/AlliancePatient"
    assert main(["validate", "--profile", profile, str(plain_file)]) == 1
    assert "Patient.name" in capsys.readouterr().out


def study(*series: dict) -> dict:
    return {"resourceType": "ImagingStudy", "status": "available",
            "meta": {"profile": [f"{BASE}/StructureDefinition/AllianceImagingStudy"]},
            "subject": {"reference": "Patient/p"}, "started": "2026-11-03",
            "series": list(series)}


DCM = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}


def test_nested_elements_count_per_parent_and_match_patterns():
    good = {"uid": "1.2.3", "modality": DCM, "numberOfInstances": 96}
    assert found(study(good)) == []
    counted = {k: v for k, v in good.items() if k != "numberOfInstances"}
    assert found(study(good, counted)) == [
        ("error", "ImagingStudy.series.numberOfInstances", "required")]
    local = {**good, "modality": {"system": "urn:local:modality", "code": "CT"}}
    assert found(study(local)) == [("error", "ImagingStudy.series.modality", "value")]


def test_reference_targets_the_profile_narrows():
    task = {"resourceType": "Task", "status": "requested", "intent": "order",
            "meta": {"profile": [f"{BASE}/StructureDefinition/AllianceReferralTask"]},
            "basedOn": [{"reference": "ServiceRequest/r"}], "authoredOn": "2026-11-03",
            "focus": {"reference": "ServiceRequest/r"},
            "owner": {"reference": "http://demo.alliance-fhir.org/fhir/Organization/lead"}}
    assert found(task) == []
    assert found({**task, "owner": {"reference": "Practitioner/x/_history/2"}}) == [
        ("error", "Task.owner", "structure")]
    assert found({**task, "owner": {"reference": "#contained"}}) == []
