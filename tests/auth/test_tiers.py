"""Users' tokens from an OpenID Connect issuer, access tiers enforced inside search, the
separated administrators (三员分立) and break-glass, on a small alliance: each user sees
exactly the patients their tier allows, by every way of reading, and writes only inside it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import quote

import orjson
import pytest
from bulk_support import finished, kick_off, lines
from oidc_issuer import Issuer, running_issuer
from support import Client

from fhir_server.app import build_app
from fhir_server.cli import main
from fhir_server.config import Settings

BASE = "http://alliance-fhir.org/fhir"
TIER = f"{BASE}/StructureDefinition/access-tier"
ADMIN = f"{BASE}/CodeSystem/admin-role"


def _role(id: str, practitioner: str, organization: str, tier: str = "",
          admin: str = "") -> dict:
    role: dict = {"resourceType": "PractitionerRole", "id": id, "active": True,
                  "practitioner": {"reference": f"Practitioner/{practitioner}"},
                  "organization": {"reference": f"Organization/{organization}"}}
    if tier:
        role["extension"] = [{"url": TIER, "valueCode": tier}]
    if admin:
        role["code"] = [{"coding": [{"system": ADMIN, "code": admin}]}]
    return role


def _observation(id: str, patient: str, performer: str = "") -> dict:
    observation: dict = {"resourceType": "Observation", "id": id, "status": "final",
                         "code": {"text": "血红蛋白"},
                         "subject": {"reference": f"Patient/{patient}"}}
    if performer:
        observation["performer"] = [{"reference": performer}]
    return observation


ALLIANCE = [
    {"resourceType": "Organization", "id": "hosp", "name": "牵头医院"},
    {"resourceType": "Organization", "id": "dept", "name": "心内科",
     "partOf": {"reference": "Organization/hosp"}},
    {"resourceType": "Organization", "id": "town", "name": "乡镇卫生院"},
    *({"resourceType": "Practitioner", "id": p, "name": [{"family": "王"}]}
      for p in ("pa", "pb", "pc", "padm")),
    _role("own", "pa", "dept"),
    _role("colleague", "pb", "dept"),
    _role("org", "pb", "hosp", "organization"),
    _role("all", "pb", "hosp", "alliance"),
    _role("townie", "pc", "town", "own-patients"),
    _role("sys", "padm", "hosp", admin="system-admin"),
    _role("sec", "padm", "hosp", admin="security-admin"),
    _role("aud", "padm", "hosp", admin="audit-admin"),
    {"resourceType": "Patient", "id": "p1", "generalPractitioner": [
        {"reference": "Practitioner/pa"}], "managingOrganization": {
        "reference": "Organization/dept"}},
    {"resourceType": "Patient", "id": "p2"},
    {"resourceType": "Patient", "id": "p3", "managingOrganization": {
        "reference": "Organization/town"}},
    {"resourceType": "Patient", "id": "p4", "managingOrganization": {
        "reference": "Organization/hosp"}},
    _observation("o1", "p1"),
    _observation("o2", "p2", "PractitionerRole/colleague"),
    _observation("o3", "p3", "PractitionerRole/townie"),
]
# user -> the patients they may see
SEES = {"own": {"p1"}, "org": {"p1", "p2", "p4"}, "all": {"p1", "p2", "p3", "p4"},
        "townie": {"p3"}, "sys": set(), "sec": set(), "aud": set()}
OBSERVATIONS = {"p1": "o1", "p2": "o2", "p3": "o3"}
# patient/ tokens: (user, the token's patient) -> what they may see (that patient, in the tier)
PATIENT_TOKENS = {"all/p3": ("all", "p3", {"p3"}), "own/p1": ("own", "p1", {"p1"}),
                  "own/p3": ("own", "p3", set())}
MATRIX = sorted([*SEES, *PATIENT_TOKENS])


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def alliance(settings: Settings, issuer: Issuer) -> Iterator[tuple[Client, Issuer, Settings]]:
    with Client(build_app(settings)) as open_client:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in ALLIANCE]}
        answer = open_client.post("/", json=bundle)
        assert answer.status_code == 200, answer.text
    secured = replace(settings, auth="smart", oidc_issuer=issuer.url,
                      oidc_audience=issuer.audience, dev_tokens=True)
    with Client(build_app(secured)) as client:
        yield client, issuer, secured


def _as(issuer: Issuer, user: str, scope: str = "user/*.cruds", **claims: object) -> dict:
    return {"authorization": f"Bearer {issuer.token(f'PractitionerRole/{user}', scope, **claims)}"}


def _reader(issuer: Issuer, who: str) -> tuple[dict, set[str]]:
    """The headers of a matrix reader (a user, or a user's patient/ token) and the
    patients they may see."""
    if who in PATIENT_TOKENS:
        user, patient, seen = PATIENT_TOKENS[who]
        return _as(issuer, user, "patient/*.rs", patient=patient), seen
    return _as(issuer, who), SEES[who]


def _ids(bundle: dict, mode: str = "match") -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode") == mode}


@pytest.mark.parametrize("user", MATRIX)
def test_each_tier_reads_exactly_its_patients(alliance, user):
    client, issuer, _ = alliance
    headers, seen = _reader(issuer, user)
    found = client.get("/Patient?_total=accurate&_count=2", headers=headers).json()
    assert found["total"] == len(seen)
    pages, ids = found, set()
    while True:  # paging links never reach past the tier
        ids |= _ids(pages)
        following = [link["url"] for link in pages["link"] if link["relation"] == "next"]
        if not following:
            break
        pages = client.get(following[0], headers=headers).json()
    assert ids == seen
    for patient in ("p1", "p2", "p3", "p4"):  # invisible: 404, as for an unknown id
        status = client.get(f"/Patient/{patient}", headers=headers).status_code
        assert status == (200 if patient in seen else 404), patient
        assert client.get(f"/Patient/{patient}/_history", headers=headers).status_code \
            == (200 if patient in seen else 404)
    observations = client.get("/Observation?_include=Observation:subject",
                              headers=headers).json()
    assert _ids(observations) == {OBSERVATIONS[p] for p in seen if p in OBSERVATIONS}
    assert _ids(observations, "include") == {p for p in seen if p in OBSERVATIONS}
    reverse = client.get("/Patient?_revinclude=Observation:subject", headers=headers).json()
    assert _ids(reverse, "include") == {OBSERVATIONS[p] for p in seen if p in OBSERVATIONS}
    has = client.get("/Patient?_has:Observation:subject:status=final", headers=headers).json()
    assert _ids(has) == {p for p in seen if p in OBSERVATIONS}
    chained = client.get("/Observation?subject:Patient.organization=Organization/town",
                         headers=headers).json()
    assert _ids(chained) == ({"o3"} if "p3" in seen else set())
    compartment = client.get("/Patient/p3/Observation", headers=headers).json()
    assert _ids(compartment) == ({"o3"} if "p3" in seen else set())
    for path, expected in [("/Observation/_history", {OBSERVATIONS[p] for p in seen
                                                      if p in OBSERVATIONS}),
                           ("/_history", None)]:  # only the versions of visible resources
        history = client.get(f"{path}?_count=500", headers=headers).json()
        found = {(e["resource"]["resourceType"], e["resource"]["id"])
                 for e in history["entry"] if "resource" in e}
        assert history["total"] == len(history["entry"])
        if expected is not None:
            assert {i for _, i in found} == expected
        else:
            assert {i for t, i in found if t == "Patient"} == seen


@pytest.mark.parametrize("user", sorted(SEES))
def test_writes_stay_inside_the_tier(alliance, user):
    client, issuer, _ = alliance
    headers = _as(issuer, user)
    for patient in ("p1", "p3"):
        created = client.post("/Observation", json=_observation("x", patient),
                              headers=headers)
        assert created.status_code == (201 if patient in SEES[user] else 403), created.text
    update = client.put("/Observation/o3", json=_observation("o3", "p3"), headers=headers)
    assert update.status_code == (200 if "p3" in SEES[user] else 403)
    moved = client.put("/Observation/o3", json=_observation("o3", "p1"), headers=headers)
    assert moved.status_code == (200 if {"p1", "p3"} <= SEES[user] else 403)
    assert client.delete("/Observation/o2", headers=headers).status_code \
        == (204 if "p2" in SEES[user] else 403)
    # naming oneself takes the patient on (a first visit)
    mine = client.post("/Observation", json=_observation(
        "y", "p4", f"PractitionerRole/{user}"), headers=headers)
    assert mine.status_code == (403 if user in ("sys", "sec", "aud") else 201), mine.text


def test_directory_data_is_readable_by_every_user_but_audit_only_by_the_auditor(alliance):
    client, issuer, _ = alliance
    for user in ("own", "townie", "sys", "sec"):
        assert client.get("/Organization/town", headers=_as(issuer, user)).status_code == 200
        assert _ids(client.get("/PractitionerRole", headers=_as(issuer, user)).json()) \
            >= {"own", "org"}
        assert _ids(client.get("/AuditEvent", headers=_as(issuer, user)).json()) == set()
    assert client.get("/Organization/town", headers=_as(issuer, "aud")).status_code == 404


def test_only_a_security_admin_sets_tiers_and_admin_roles(alliance):
    client, issuer, _ = alliance
    promoted = _role("own", "pa", "dept", "alliance")
    for user in ("own", "all", "sys", "aud"):
        refused = client.put("/PractitionerRole/own", json=promoted, headers=_as(issuer, user))
        assert refused.status_code == 403, user
        assert "security administrator" in refused.text or user == "aud"  # (reads only)
    made_admin = _role("newbie", "pa", "dept", admin="system-admin")
    assert client.put("/PractitionerRole/newbie", json=made_admin,
                      headers=_as(issuer, "sys")).status_code == 403
    allowed = client.put("/PractitionerRole/own", json=promoted, headers=_as(issuer, "sec"))
    assert allowed.status_code == 200, allowed.text
    assert _ids(client.get("/Patient", headers=_as(issuer, "own")).json()) == SEES["all"]


def test_break_glass_opens_the_alliance_for_one_request_and_is_audited(alliance):
    client, issuer, _ = alliance
    emergency = {**_as(issuer, "own"), "x-purpose-of-use": "BTG",
                 "x-break-glass-reason": quote("昏迷患者急诊抢救")}
    assert client.get("/Patient/p3", headers=emergency).status_code == 200
    assert client.get("/Patient/p3", headers=_as(issuer, "own")).status_code == 404
    no_reason = {**_as(issuer, "own"), "x-purpose-of-use": "BTG"}
    assert client.get("/Patient/p3", headers=no_reason).status_code == 400
    admin = {**_as(issuer, "sys"), "x-purpose-of-use": "BTG", "x-break-glass-reason": "x"}
    assert client.get("/Patient/p3", headers=admin).status_code == 403
    listed = client.get("/AuditEvent?purpose=BTG", headers=_as(issuer, "aud")).json()
    events = [e["resource"] for e in listed["entry"]]
    assert len(events) == 3  # the request let through, and the two refused
    [event] = [e for e in events if e["outcome"] == "0"]
    assert event["agent"][0]["who"]["reference"] == "PractitionerRole/own"
    assert event["purposeOfEvent"][0]["text"] == "昏迷患者急诊抢救"
    assert event["entity"][0]["what"]["reference"] == "Patient/p3"


def test_break_glass_can_be_kept_to_some_roles(alliance):
    _, issuer, settings = alliance
    emergency = {**_as(issuer, "own"), "x-purpose-of-use": "BTG", "x-break-glass-reason": "x"}
    kept = replace(settings, break_glass_roles="doctor, 309343006")
    with Client(build_app(kept)) as client:
        refused = client.get("/Patient/p3", headers=emergency)
        assert refused.status_code == 403 and "FHIR_BREAK_GLASS_ROLES" in refused.text
    doctor = {**_role("own", "pa", "dept"), "code": [{"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
         "code": "doctor"}]}]}
    with Client(build_app(replace(settings, auth="none"))) as open_client:
        assert open_client.put("/PractitionerRole/own", json=doctor).status_code == 200
    with Client(build_app(kept)) as client:
        assert client.get("/Patient/p3", headers=emergency).status_code == 200


def test_break_glass_is_audited_with_access_audit_off(alliance):
    _, issuer, settings = alliance
    with Client(build_app(replace(settings, audit_access=False))) as quiet:
        emergency = {**_as(issuer, "own"), "x-purpose-of-use": "BTG",
                     "x-break-glass-reason": "coma"}
        assert quiet.get("/Patient/p3", headers=emergency).status_code == 200
        assert quiet.get("/Patient/p1", headers=_as(issuer, "own")).status_code == 200
        events = [e["resource"] for e in quiet.get(
            "/AuditEvent", headers=_as(issuer, "aud")).json()["entry"]]
    assert len(events) == 1 and events[0]["purposeOfEvent"][0]["text"] == "coma"


def test_audit_events_cannot_be_changed(alliance):
    client, issuer, _ = alliance
    emergency = {**_as(issuer, "all"), "x-purpose-of-use": "BTG",
                 "x-break-glass-reason": quote("抢救")}
    client.get("/Patient/p1", headers=emergency)
    [event] = [e["resource"] for e in client.get(
        "/AuditEvent", headers=_as(issuer, "aud")).json()["entry"]]
    for user in ("aud", "sec", "all"):
        changed = client.put(f"/AuditEvent/{event['id']}", json=event,
                             headers=_as(issuer, user))
        assert changed.status_code in (403, 404), user
        assert client.delete(f"/AuditEvent/{event['id']}",
                             headers=_as(issuer, user)).status_code in (403, 404)


def test_patient_scopes_bind_to_the_patient_claim(alliance):
    client, issuer, _ = alliance
    headers = _as(issuer, "all", "patient/*.rs", patient="p2")
    assert _ids(client.get("/Patient", headers=headers).json()) == {"p2"}
    assert _ids(client.get("/Observation", headers=headers).json()) == {"o2"}
    assert client.post("/Observation", json=_observation("z", "p2"),
                       headers=headers).status_code == 403  # rs: no create
    unbound = _as(issuer, "all", "patient/*.rs")
    assert client.get("/Patient", headers=unbound).status_code == 401


@pytest.mark.parametrize("case", ["unknown issuer", "bad signature", "expired", "not yet valid",
                                  "wrong audience", "no fhirUser", "unknown fhirUser",
                                  "fhirUser not a practitioner", "bad scope"])
def test_bad_user_tokens_answer_401(alliance, case):
    client, issuer, _ = alliance
    other = Issuer()
    other.url = issuer.url
    tokens = {
        "unknown issuer": lambda: issuer.token("PractitionerRole/own", iss="https://idp.x"),
        "bad signature": lambda: other.token("PractitionerRole/own"),
        "expired": lambda: issuer.token("PractitionerRole/own", exp_in=-3600),
        "not yet valid": lambda: issuer.token("PractitionerRole/own", nbf=9_999_999_999),
        "wrong audience": lambda: issuer.token("PractitionerRole/own", aud="https://x"),
        "no fhirUser": lambda: issuer.token(None),
        "unknown fhirUser": lambda: issuer.token("PractitionerRole/nobody"),
        "fhirUser not a practitioner": lambda: issuer.token("Patient/p1"),
        "bad scope": lambda: issuer.token("PractitionerRole/own", "user/Patient.xyz"),
    }
    answer = client.get("/Patient", headers={"authorization": f"Bearer {tokens[case]()}"})
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_absolute_fhir_user_urls_and_es256_tokens_are_taken(alliance):
    client, issuer, _ = alliance
    token = issuer.token("http://testserver/fhir/PractitionerRole/townie", algorithm="ES256")
    answer = client.get("/Patient", headers={"authorization": f"Bearer {token}"})
    assert _ids(answer.json()) == {"p3"}


def test_development_tokens_from_the_cli(alliance, capsys):
    client, _, settings = alliance
    assert main(["token", "--user", "PractitionerRole/own", "--scope", "user/*.rs",
                 "--storage", settings.storage]) == 0
    token = capsys.readouterr().out.strip()
    answer = client.get("/Patient", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and _ids(answer.json()) == {"p1"}
    assert client.post("/Patient", json={"resourceType": "Patient"}, headers={
        "authorization": f"Bearer {token}"}).status_code == 403  # rs only
    assert main(["token", "--user", "Patient/p1", "--storage", settings.storage]) == 2
    with Client(build_app(replace(settings, dev_tokens=False))) as strict:
        assert strict.get("/Patient", headers={
            "authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("user", MATRIX)
def test_a_bulk_export_holds_what_its_user_may_see(alliance, user):
    client, issuer, _ = alliance
    headers, seen = _reader(issuer, user)
    status_url = kick_off(client, "/Patient/$export?_type=Patient,Observation", headers)
    exported = [orjson.loads(line) for line in lines(
        client, finished(client, status_url, headers), headers)]
    assert {r["id"] for r in exported if r["resourceType"] == "Patient"} == seen
    assert {r["id"] for r in exported if r["resourceType"] == "Observation"} \
        == {OBSERVATIONS[p] for p in seen if p in OBSERVATIONS}


def test_a_unique_identifier_held_outside_the_tier_is_not_named(alliance):
    client, issuer, _ = alliance
    resident = {"system": "urn:oid:2.16.156.10011.1.3", "value": "110101199001011237"}
    assert client.put("/Patient/p3", json={
        "resourceType": "Patient", "id": "p3", "identifier": [resident], "managingOrganization": {
            "reference": "Organization/town"}}, headers=_as(issuer, "all")).status_code == 200
    taken = client.post("/Patient", json={"resourceType": "Patient", "identifier": [resident]},
                        headers=_as(issuer, "own"))
    assert taken.status_code == 409
    assert "p3" not in taken.text and "another resource" in taken.text
    named = client.post("/Patient", json={"resourceType": "Patient", "identifier": [resident]},
                        headers=_as(issuer, "all"))
    assert named.status_code == 409 and "Patient/p3" in named.text
