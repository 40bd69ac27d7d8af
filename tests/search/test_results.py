"""Sorting, paging (stable while writing), includes, totals and summaries of searches."""

from __future__ import annotations

import pytest
from search_data import RESOURCES
from search_pages import included, lab, link, match_ids, put_all, walk
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings


def load(client: Client, resources: list[dict]) -> None:
    for resource in resources:
        response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert response.status_code in (200, 201), response.text


@pytest.fixture
def data(client):
    load(client, RESOURCES)
    return client


@pytest.mark.parametrize(("query", "expected"), [
    ("_sort=birthdate", ["p1", "p2", "p3", "p4", "p5"]),
    ("_sort=-birthdate", ["p4", "p3", "p2", "p1", "p5"]),
    ("_sort=gender,-birthdate", ["p3", "p2", "p1", "p4", "p5"]),
    ("_sort=name", ["p4", "p3", "p1", "p2", "p5"]),
    ("_sort=-_id", ["p5", "p4", "p3", "p2", "p1"]),
    ("_sort=_lastUpdated", ["p1", "p2", "p3", "p4", "p5"]),
])
def test_sort(data, query, expected):
    assert match_ids(data.get(f"/Patient?{query}").json()) == expected


def test_sorted_paging_follows_next_and_previous(data):
    page = data.get("/Patient?_sort=-birthdate&_count=2").json()
    seen = match_ids(page)
    pages = [page]
    while link(page, "next"):
        page = data.get(link(page, "next")).json()
        pages.append(page)
        seen += match_ids(page)
    assert seen == ["p4", "p3", "p2", "p1", "p5"]
    back = data.get(link(pages[-1], "previous")).json()
    assert match_ids(back) == ["p2", "p1"]


def test_paging_is_stable_while_others_write(data):
    page = data.get("/Observation?_count=2").json()
    seen = match_ids(page)
    n = 0
    while link(page, "next"):
        n += 1
        data.put(f"/Observation/new{n}", json={  # lands after the cursor: seen once
            "resourceType": "Observation", "id": f"new{n}", "status": "final",
            "code": {"text": "x"}})
        data.delete("/Observation/o6") if n == 1 else None  # a later page shrinks
        page = data.get(link(page, "next")).json()
        seen += match_ids(page)
    assert len(seen) == len(set(seen))
    assert set(seen) >= {"o1", "o2", "o3", "o4", "o5"} and "o6" not in seen


@pytest.mark.volume
@pytest.mark.parametrize("param", ["birthdate", "name"])
def test_large_sorted_results_page_through_the_index(client, param):
    """More than SMALL matches: the sort index drives, descending, the patient without a
    value last; forwards to the end, then one page back."""
    put_all(client, [{"resourceType": "Patient", "id": f"b{i}",
                      "birthDate": f"{1900 + i % 100}-01-{1 + i % 28:02d}",
                      "name": [{"family": f"N{i % 100:02d}"}]} for i in range(2100)]
            + [{"resourceType": "Patient", "id": "nothing"}])
    page = client.get(f"/Patient?_sort=-{param}&_count=500").json()
    seen = match_ids(page)
    while link(page, "next"):
        page = client.get(link(page, "next")).json()
        seen += match_ids(page)
    assert len(seen) == 2101 and seen[-1] == "nothing"
    keys = [int(i[1:]) % 100 for i in seen[:-1]]
    assert keys == sorted(keys, reverse=True)
    back = client.get(link(page, "previous")).json()
    assert len(match_ids(back)) == 500


def test_include_and_revinclude(data):
    bundle = data.get("/Observation?code=2345-7&_include=Observation:subject").json()
    assert sorted(match_ids(bundle)) == ["o1", "o2", "o4"]
    assert included(bundle) == ["Patient/p1", "Patient/p2", "Patient/p3"]
    rev = data.get("/Patient?_id=p1&_revinclude=Observation:subject").json()
    assert included(rev) == ["Observation/o1", "Observation/o3"]
    typed = data.get("/ServiceRequest?_id=sr1&_include=ServiceRequest:performer:Organization")
    assert included(typed.json()) == ["Organization/org1"]
    star = data.get("/ServiceRequest?_id=sr1&_include=ServiceRequest:*").json()
    assert included(star) == ["Organization/org1", "Patient/p1", "Practitioner/pr1"]
    iterate = data.get("/DiagnosticReport?_id=dr1&_include=DiagnosticReport:result"
                       "&_include:iterate=Observation:subject").json()
    assert included(iterate) == ["Observation/o1", "Observation/o3", "Patient/p1"]
    both = data.get("/Patient?_id=p1&_revinclude=DiagnosticReport:subject"
                    "&_revinclude:iterate=Observation:subject").json()
    assert included(both) == ["DiagnosticReport/dr1", "Observation/o1", "Observation/o3"]


def test_include_limit_says_so(tmp_path):
    settings = Settings(storage=f"sqlite:///{tmp_path / 'x.db'}", include_limit=2)
    with Client(build_app(settings)) as small:
        load(small, RESOURCES)
        bundle = small.get("/Observation?_include=Observation:subject").json()
        modes = [e["search"]["mode"] for e in bundle["entry"]]
        assert modes.count("include") == 2 and modes[-1] == "outcome"
        outcome = bundle["entry"][-1]["resource"]
        assert outcome["issue"][0]["severity"] == "warning"


def test_totals_and_summaries(data):
    assert "total" not in data.get("/Observation?_count=2").json()
    assert data.get("/Observation?_count=2&_total=accurate").json()["total"] == 6
    assert data.get("/Observation?code=2345-7&_count=1&_total=accurate").json()["total"] == 3
    assert data.get("/Observation?code:not=2345-7&_total=accurate").json()["total"] == 3
    assert data.get("/Observation").json()["total"] == 6  # one page: known
    assert "total" not in data.get("/Observation?_total=none").json()
    count = data.get("/Observation?code=2345-7&_summary=count").json()
    assert count["total"] == 3 and not count.get("entry")
    summary = data.get("/Patient?_id=p2&_summary=true").json()["entry"][0]["resource"]
    assert summary["meta"]["tag"][-1]["code"] == "SUBSETTED"
    elements = data.get("/Patient?_id=p2&_elements=gender").json()["entry"][0]["resource"]
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    zero = data.get("/Patient?_count=0&_total=accurate").json()
    assert zero["total"] == 5 and not zero.get("entry")


def test_escaped_separators(client):
    client.put("/Organization/c", json={"resourceType": "Organization", "id": "c",
                                        "name": "Smith, Jones|Co$"})
    client.put("/Organization/d", json={"resourceType": "Organization", "id": "d",
                                        "name": "Smith"})
    exact = client.get("/Organization", params={"name:exact": "Smith\\, Jones\\|Co\\$"})
    assert match_ids(exact.json()) == ["c"]
    assert match_ids(client.get("/Organization", params={"name": "Smith\\,"}).json()) == ["c"]
    both = client.get("/Organization", params={"name:exact": "Smith,Smith\\, Jones\\|Co\\$"})
    assert sorted(match_ids(both.json())) == ["c", "d"]


@pytest.mark.volume
@pytest.mark.sqlite_only("equal dates come in the order of the sort index's walk")
@pytest.mark.parametrize("gender", ["female", "http://hl7.org/fhir/administrative-gender|female",
                                    "female,other", "unknown", "|female"])
def test_codes_are_checked_per_row_when_the_sort_index_drives(client, gender):
    """Over SMALL matches the sort index drives and token codes are probed by primary key
    (systems looked up first): same pages as listing them."""
    put_all(client, [{"resourceType": "Patient", "id": f"g{i}",
                      "gender": ("female", "male", "other")[i % 3],
                      "birthDate": f"{1900 + i % 100}-02-{1 + i % 28:02d}"}
                     for i in range(6300)])
    wanted = {"female": {0}, "other": {2}, "unknown": set(), "|female": set()}
    codes = set().union(*(wanted[g.split("gender|")[-1]] for g in gender.split(",")))
    expected = sorted((i for i in range(6300) if i % 3 in codes),
                      key=lambda i: (1900 + i % 100, 1 + i % 28, i), reverse=True)
    page = client.get(f"/Patient?gender={gender}&_sort=-birthdate&_count=1000").json()
    seen = match_ids(page)
    while link(page, "next"):
        page = client.get(link(page, "next")).json()
        seen += match_ids(page)
    assert [int(i[1:]) for i in seen] == expected


@pytest.mark.parametrize("query", ["code=2345-7", "code=http://loinc.org|2345-7",
                                   "code=2345-7&date=ge2000-01-01"])
def test_pages_walk_a_code_range_forwards_and_back(data, query):
    """A lone code criterion walks its index range in page order (next and previous)."""
    seen, back = walk(data, f"/Observation?{query}&_count=1")
    assert sorted(seen) == ["o1", "o2", "o4"] and len(set(seen)) == 3
    assert back == seen


def test_counted_totals_follow_updates_deletes_and_failed_transactions(client):
    """``_total`` on one code reads the counts the idx_token triggers keep: after creates,
    a code changed by an update, a delete, a rolled-back transaction and a re-index they
    equal the matches counted by listing them."""
    def observation(oid: str, code: str) -> dict:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}

    for i in range(30):
        client.put(f"/Observation/c{i}", json=observation(f"c{i}", ("2345-7", "2951-2")[i % 2]))
    client.put("/Observation/c0", json=observation("c0", "2951-2"))
    client.put("/Observation/c2", json=observation("c2", "2345-7"))  # unchanged codes
    client.delete("/Observation/c4")
    failing = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation("c99", "2345-7"),
         "request": {"method": "PUT", "url": "Observation/c99"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient/nobody"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    assert client.post("", json=failing).status_code >= 400
    expected = {"2345-7": 13, "2951-2": 16, "http://loinc.org|2345-7": 13, "1751-7": 0}
    for stage in ("written", "reindexed"):
        for code, count in expected.items():
            bundle = client.get(f"/Observation?code={code}&_total=accurate&_count=1").json()
            listed = client.get(f"/Observation?code={code}&_count=100").json()
            assert bundle["total"] == len(match_ids(listed)) == count, (stage, code)
        assert client.post("/$reindex").status_code == 200


def test_has_with_a_small_criterion_pages_in_resource_order(client):
    """A birth year's patients are the candidates, each checked for an urgent referral:
    the pages, forwards and back, hold exactly the matches, in resource order."""
    put_all(client, [resource for i in range(60) for resource in (
        {"resourceType": "Patient", "id": f"h{i}",
         "birthDate": f"{1980 + i % 2}-05-0{1 + i % 9}"},
        {"resourceType": "ServiceRequest", "id": f"s{i}", "status": "active",
         "intent": "order", "priority": "stat" if i % 3 == 0 else "routine",
         "subject": {"reference": f"Patient/h{i}"}})])
    expected = [f"h{i}" for i in range(60) if i % 6 == 0]  # born 1980 and urgent
    query = "/Patient?_has:ServiceRequest:subject:priority=stat&birthdate=1980"
    forwards, backwards = walk(client, f"{query}&_count=3")
    assert forwards == backwards == expected
    assert client.get(f"{query}&_total=accurate&_count=1").json()["total"] == len(expected)
    by_day = sorted(expected, key=lambda i: (-(int(i[1:]) % 9), int(i[1:])))
    assert walk(client, f"{query}&_sort=-birthdate&_count=4")[0] == by_day


@pytest.mark.parametrize(("query", "wanted"), [
    ("name=王", lambda i: i % 3 == 0),
    ("name=王,李", lambda i: i % 3 in (0, 1)),
    ("name=wang", lambda i: i % 3 == 2),  # "Wang" and "WANG": one norm, two forms: listed
    ("name:exact=王伟", lambda i: i % 3 == 0 and i % 4 == 0),
    ("name=王伟", lambda i: i % 3 == 0 and i % 4 == 0),
])
def test_string_prefix_runs_merged_in_resource_order(client, query, wanted):
    """A prefix covering a few values with many matches: each value's run is read in rid
    order and merged; pages forwards and back hold exactly the matches, in order."""
    family = ("王", "李", "Wang")
    put_all(client, [{"resourceType": "Patient", "id": f"n{i}", "name": [{
        "family": family[i % 3] if i % 6 != 5 else "WANG",
        "given": [("伟", "芳", "敏", "军")[i % 4]]}]} for i in range(90)])
    expected = [f"n{i}" for i in range(90) if wanted(i)]
    forwards, backwards = walk(client, f"/Patient?{query}&_count=2")
    assert forwards == backwards == expected


@pytest.mark.parametrize(("query", "wanted"), [
    ("code=2345-7&subject=Patient/k1", lambda i: i % 3 == 1 and i % 2 == 0),
    ("code=2345-7&subject=Patient/k1&date=2025-03", lambda i: i % 3 == 1 and i % 4 == 0),
    ("subject=Patient/k1&value-quantity=gt5", lambda i: i % 3 == 1 and i % 10 > 5),
    ("code=2345-7&subject:Patient.name=k1&date=ge2025-03-01",
     lambda i: i % 3 == 1 and i % 2 == 0 and i % 4 == 0),
])
def test_a_small_criterion_drives_and_the_others_are_checked(client, query, wanted):
    """One patient's observations drive; the code, dates, quantities and references are
    checked for each of them (by primary key or rid index): pages forwards and back hold
    exactly the matches, in order, and the total counts them."""
    for k in range(3):
        client.put(f"/Patient/k{k}", json={"resourceType": "Patient", "id": f"k{k}",
                                           "name": [{"family": f"k{k}"}]})
    put_all(client, [lab(f"o{i}", ("2345-7", "2160-0")[i % 2],
                         ("2025-03-05", "2025-02-05")[i % 4 != 0], i % 10,
                         subject={"reference": f"Patient/k{i % 3}"}) for i in range(60)])
    expected = [f"o{i}" for i in range(60) if wanted(i)]
    forwards, backwards = walk(client, f"/Observation?{query}&_count=2")
    assert forwards == backwards == expected
    total = client.get(f"/Observation?{query}&_total=accurate&_count=1").json()["total"]
    assert total == len(expected)


@pytest.mark.volume
@pytest.mark.parametrize(("query", "wanted"), [
    ("_has:ServiceRequest:subject:priority=stat", lambda i: i % 8 != 0),
    ("_has:ServiceRequest:subject:priority=stat&birthdate=ge1990", lambda i: i % 8 not in (0, 1)),
    ("_has:ServiceRequest:subject:priority=routine", lambda i: i % 8 == 0),
])
def test_has_with_many_sources_walks_the_patients(client, query, wanted):
    """More than SMALL urgent referrals: the patients are walked in rid order, each checked
    through its referrers (few routine ones: listed); pages forwards and back hold exactly
    the matches."""
    put_all(client, [resource for i in range(2400) for resource in (
        {"resourceType": "Patient", "id": f"m{i}",
         "birthDate": "1980-01-01" if i % 8 == 1 else "1995-01-01"},
        {"resourceType": "ServiceRequest", "id": f"q{i}", "status": "active",
         "intent": "order", "priority": "routine" if i % 8 == 0 else "stat",
         "subject": {"reference": f"Patient/m{i}"}})])
    expected = [f"m{i}" for i in range(2400) if wanted(i)]
    forwards, backwards = walk(client, f"/Patient?{query}&_count=400")
    assert forwards == backwards == expected


def test_recent_last_updated_lists_the_few_recent_resources(client):
    """``_lastUpdated=ge…`` over the last few writes lists them by the type's update index
    (an incremental pull); with other criteria and a sort the pages hold exactly them."""
    stamps = {}
    for i in range(40):
        body = {"resourceType": "Patient", "id": f"u{i}", "gender": ("male", "female")[i % 2]}
        stamps[f"u{i}"] = client.put(f"/Patient/u{i}", json=body).json()["meta"]["lastUpdated"]
    since = stamps["u30"]
    recent = [pid for pid, stamp in stamps.items() if stamp >= since]
    assert walk(client, f"/Patient?_lastUpdated=ge{since}&_count=4")[0] == recent
    female = [pid for pid in recent if int(pid[1:]) % 2]
    assert walk(client, f"/Patient?_lastUpdated=ge{since}&gender=female&_count=2")[0] == female
    newest_first = walk(client, f"/Patient?_lastUpdated=ge{since}&_sort=-_lastUpdated")[0]
    assert sorted(newest_first) == sorted(recent)
    assert [stamps[p] for p in newest_first] == sorted((stamps[p] for p in recent), reverse=True)
    total = client.get(f"/Patient?_lastUpdated=ge{since}&_total=accurate&_count=1").json()
    assert total["total"] == len(recent)
