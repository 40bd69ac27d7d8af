"""The leading clause of a MongoDB filter (``compile.driver``): the narrowest single-field
clause the criteria imply, which a one-index planner (SecantusDB) looks candidates up by."""

from __future__ import annotations

import pytest

from fhir_server.storage.mongo.compile import driver, searched


def token(code: object, k: str = "Observation.code") -> dict:
    return {"idx.token": {"$elemMatch": {"k": k, "code": code}}}


def dated(low: dict) -> dict:
    return {"idx.date": {"$elemMatch": {"k": "Observation.date", "low": low}}}


@pytest.mark.parametrize(("where", "expected"), [
    ({}, {}),
    (token({"$eq": "2345-7"}), {"idx.token.code": {"$eq": "2345-7"}}),
    (token("2345-7"), {"idx.token.code": {"$eq": "2345-7"}}),  # a bare value
    ({"$and": [dated({"$gte": 1, "$lt": 9}), token({"$in": ["a", "b"]})]},
     {"idx.token.code": {"$in": ["a", "b"]}}),  # an exact value before a range
    ({"$and": [dated({"$gte": 1}), dated({"$gte": 1, "$lt": 9})]},
     {"idx.date.low": {"$gte": 1, "$lt": 9}}),  # a closed range before an open one
    ({"$or": [token({"$eq": "a"}), token({"$in": ["b", "c"]}, "Observation.category")]},
     {"idx.token.code": {"$in": ["a", "b", "c"]}}),  # branches on one column: their values
    ({"$or": [token({"$eq": "a"}), dated({"$gte": 1})]}, {}),  # different columns: none
    ({"$or": [token({"$eq": "a"}), {"id": {"$in": ["x"]}, "type": {"$in": ["Patient"]}}]},
     {}),
    ({"$and": [token({"$eq": "a"}), {"id": {"$in": ["x", "y"]}, "type": {"$in": ["P"]}}]},
     {"_id": {"$in": ["P/x", "P/y"]}}),  # ids first
    (token({"$regex": "x"}), {}),  # a text search: no index
    (token({"$ne": "a"}), {}),
    ({"$nor": [token({"$eq": "a"})]}, {}),  # a negation narrows nothing
    (token({"$eq": None}), {}),  # (missing values)
])
def test_the_narrowest_indexed_clause_leads(where: dict, expected: dict):
    assert driver(where) == expected


def test_conditions_stand_beside_the_driver_not_under_an_operator():
    code, other = token({"$eq": "a"}), token({"$eq": "b"}, "Observation.category")
    ids = {"id": {"$in": ["x"]}, "type": {"$in": ["Observation"]}}
    assert searched(["Observation"], {"$and": [code, other]}) == {
        "idx.token.code": {"$eq": "a"}, "deleted": False, "type": {"$in": ["Observation"]},
        "idx.token": {"$all": [code["idx.token"], other["idx.token"]]}}
    assert searched(["Observation"], ids)["id"] == {"$in": ["x"]}  # (the same types: kept)
    negated = {"$nor": [code]}
    assert searched([], negated) == {"deleted": False, "$and": [negated]}  # (no other way)
