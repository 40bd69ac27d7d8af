"""Every pair of criteria, and every triple with a large code, over one data set that
crosses the planner's thresholds: whichever plan finds the candidates (a small criterion,
a code's index range, the type, listing), the pages forwards and back hold exactly the
matches, in order, and sorted pages hold them in date order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import combinations
from pathlib import Path

import pytest
from search_pages import lab, put_all, walk
from support import Client

from fhir_server.app import build_app
from fhir_server.config import Settings

SIZE = 2400  # more than the planner's SMALL (2,000) for the widest criteria
CRITERIA: dict[str, Callable[[int], bool]] = {
    "code=2345-7": lambda i: i % 8 != 0,  # 2,100: walked as a code range
    "code=2160-0": lambda i: i % 8 == 0,
    "subject=Patient/k1": lambda i: i % 3 == 1,
    "subject:Patient.name=k2": lambda i: i % 3 == 2,
    "date=2025-03": lambda i: i % 4 == 0,
    "date=ge2025-02-01": lambda i: True,  # open ranges: checked per resource
    "date=lt2025-03-01": lambda i: i % 4 != 0,
    "value-quantity=gt6": lambda i: i % 10 > 6,
    "status=amended": lambda i: i % 5 == 0,
    "status=final,amended": lambda i: True,  # two codes: not one index range
    "_id=w1,w2,w3,w8,w16,w40,w41,w2399": lambda i: i in (1, 2, 3, 8, 16, 40, 41, 2399),
    "_lastUpdated=gt2000-01-01": lambda i: True,
}
PAIRS = [*CRITERIA, *(f"{a}&{b}" for a, b in combinations(CRITERIA, 2)),
         *(f"code=2345-7&{a}&{b}" for a, b in combinations(list(CRITERIA)[1:], 2))]


def wanted(query: str) -> list[str]:
    return [f"w{i}" for i in range(SIZE)
            if all(CRITERIA[part](i) for part in query.split("&"))]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    db = Path(tmp_path_factory.mktemp("plans")) / "plans.db"
    with Client(build_app(Settings(storage=f"sqlite:///{db}"))) as c:
        put_all(c, [{"resourceType": "Patient", "id": f"k{k}", "name": [{"family": f"k{k}"}]}
                    for k in range(3)])
        put_all(c, [lab(f"w{i}", "2345-7" if i % 8 else "2160-0",
                        ("2025-03-05", "2025-02-05")[i % 4 != 0], i % 10,
                        subject={"reference": f"Patient/k{i % 3}"},
                        status="amended" if i % 5 == 0 else "final")
                    for i in range(SIZE)])
        yield c


@pytest.mark.parametrize("query", PAIRS)
def test_pages_hold_exactly_the_matches(client, query):
    forwards, backwards = walk(client, f"/Observation?{query}&_count=500")
    assert forwards == backwards == wanted(query)
    total = client.get(f"/Observation?{query}&_total=accurate&_count=1").json()["total"]
    assert total == len(wanted(query))


@pytest.mark.parametrize("query", [q for q in PAIRS if "&" not in q or "code=2345-7" in q])
def test_sorted_pages_hold_the_matches_in_date_order(client, query):
    forwards, _ = walk(client, f"/Observation?{query}&_sort=-date&_count=700")
    assert sorted(forwards) == sorted(wanted(query))
    march = [int(i[1:]) % 4 == 0 for i in forwards]
    assert march == sorted(march, reverse=True)  # 2025-03-05 before 2025-02-05

