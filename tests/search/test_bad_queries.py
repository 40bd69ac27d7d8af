"""Every malformed search answers 400 with an OperationOutcome naming the parameter."""

from __future__ import annotations

import pytest

CASES = [
    ("/Patient?birthdate=notadate", "birthdate"),
    ("/Patient?birthdate=xx2020", "birthdate"),
    ("/Patient?birthdate=2020-13-01", "birthdate"),
    ("/Patient?birthdate=2020-01-01T10:00:00+25:00", "birthdate"),
    ("/Patient?gender:foo=male", "gender:foo"),
    ("/Patient?name:below=x", "name:below"),
    ("/Patient?birthdate:exact=2020", "birthdate:exact"),
    ("/Patient?name.family=x", "name.family"),
    ("/Observation?subject:Unicorn.name=x", "subject:Unicorn.name"),
    ("/Observation?subject.unknown=x", "subject.unknown"),
    ("/Patient?_sort=unknown", "_sort"),
    ("/Patient?_count=-1", "_count"),
    ("/Patient?_total=some", "_total"),
    ("/Observation?value-quantity=5|a", "value-quantity"),
    ("/Observation?value-quantity=abc", "value-quantity"),
    ("/Observation?code-value-quantity=abc", "code-value-quantity"),
    ("/Patient?_has:Unicorn:x:y=1", "_has:Unicorn:x:y"),
    ("/Patient?_has:Observation:code:status=final", "_has:Observation:code:status"),
    ("/Patient?_has:Observation=1", "_has:Observation"),
    ("/Patient?_include=Unicorn:x", "_include"),
    ("/Patient?_include=Patient:gender", "_include"),
    ("/Patient?_include=Patient", "_include"),
    ("/Patient?_include:deep=Patient:organization", "_include:deep"),
    ("/Patient?gender:missing=maybe", "gender:missing"),
    ("/Patient?gender=", "gender"),
    ("/Patient?_page=garbage", "_page"),
    ("/Patient?identifier:of-type=onlyone", "identifier:of-type"),
    ("/Patient?_text=x", "_text"),
    ("/Patient?_contained=true", "_contained"),
    ("/Observation?code:in=http://x/vs", "code:in"),
    ("/?_type=Patient,Observation&code=x", "code"),
    ("/Patient/p1/Practitioner", "Patient/p1/Practitioner"),
]


@pytest.mark.parametrize(("url", "expression"), CASES, ids=[c[0] for c in CASES])
def test_bad_query(client, url, expression):
    response = client.get(url)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["severity"] == "error"
    assert issue["expression"] == [expression], issue


def test_strict_handling_refuses_unknown_parameters(client):
    response = client.get("/Patient?colour=red", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["colour"]
    lenient = client.get("/Patient?colour=red&gender=male").json()
    assert lenient["link"][0]["url"].endswith("/Patient?gender=male")
