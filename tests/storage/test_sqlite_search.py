"""The SQL compiler, tested as data: plan nodes in, (sql, params) out."""

from __future__ import annotations

from datetime import UTC

import pytest

from fhir_server.search.plan import AnyOf, Chain, Cmp, Has, IdMatch, IndexMatch, Missing
from fhir_server.search.types.date import conjunction as date_conjunction
from fhir_server.search.values import DateRange
from fhir_server.storage.sqlite_search import SqlCompiler, identifier, long_list

PIDS = {"Observation.code": 1, "Observation.date": 2, "Observation.subject": 3,
        "Patient.name": 4}
CODE = IndexMatch("token", "Observation.code", ((Cmp("code", "=", "2345-7"),),))
OPEN_DATE = IndexMatch("date", "Observation.date", ((Cmp("high", ">", 100),),))


def compiler() -> SqlCompiler:
    return SqlCompiler(lambda key: PIDS.get(key, -1))


def test_index_match_is_a_bound_subquery():
    sql, params = compiler().where((CODE,), "r")
    assert sql == ('r.rid IN (SELECT rid FROM "idx_token" WHERE pid = ? AND '
                   '(("code" = ?)))')
    assert params == [1, "2345-7"]


def test_open_date_range_is_probed_when_another_criterion_drives():
    sql, params = compiler().where((CODE, OPEN_DATE), "r")
    assert 'EXISTS (SELECT 1 FROM "idx_date" WHERE rid = r.rid AND pid = ?' in sql
    assert params == [1, "2345-7", 2, 100]
    alone, _ = compiler().where((OPEN_DATE,), "r")
    assert alone.startswith("r.rid IN (SELECT rid FROM \"idx_date\"")


def test_chain_and_missing():
    inner = IndexMatch("string", "Patient.name", ((Cmp("norm", "prefix", "张"),),))
    sql, params = compiler().where(
        (Chain("Observation.subject", "Patient", (inner,)),
         Missing("token", "Observation.code", True)), "r")
    assert "f.target_type = ?" in sql and "r.rid NOT IN (SELECT rid FROM \"idx_token\"" in sql
    assert params == [3, "Patient", "Patient", 4, "张", "张\U0010ffff", 1]


def test_identifiers_come_only_from_the_vocabulary():
    assert identifier("token", "code") == '"code"'
    with pytest.raises(ValueError):
        identifier("token; DROP TABLE resources", None)
    with pytest.raises(ValueError):
        identifier("token", "code = 1 OR 1")


def test_date_equality_bounds_the_start_of_stored_ranges():
    """``birthdate=1952``: the start is bounded above too, so the index range ends."""
    year = DateRange.parse("1952", UTC)
    (within,) = date_conjunction("eq", year)
    assert Cmp("low", ">=", year.low) in within and Cmp("low", "<=", year.high) in within
    sql, _ = compiler().where((IndexMatch("date", "Observation.date", (within,)),), "r")
    assert '"low" >= ? AND "low" <= ? AND "high" <= ?' in sql


def test_has_checked_per_resource_reads_source_rows_only_when_needed():
    probing = SqlCompiler(lambda key: PIDS.get(key, -1), lambda pid, code: ["http://loinc.org"])
    by_index = Has("Observation", "Observation.subject", "Patient", (CODE,))
    sql, params = probing.where((by_index,), "r")
    assert "EXISTS (SELECT 1 FROM idx_reference t1 WHERE t1.pid = ?" in sql
    assert "resources t" not in sql and "rid = t1.rid" in sql
    assert params == ["Patient", 3, "Patient", 1, "2345-7", "http://loinc.org"]
    by_id = Has("Observation", "Observation.subject", "Patient", (IdMatch(("o1",)),))
    sql, params = probing.where((by_id,), "r")
    assert "CROSS JOIN resources t3 ON t3.rid = t2.rid AND t3.type = ?" in sql
    assert params == ["Patient", "Observation", 3, "Patient", "o1"]


def test_a_driven_walk_checks_dates_quantities_and_references_by_rid():
    """With something else driving (``systems`` given), index matches with a rid index
    are checked per resource; a string match, which has none, is listed."""
    probing = SqlCompiler(lambda key: PIDS.get(key, -1), lambda pid, code: None)
    subject = IndexMatch("reference", "Observation.subject",
                         ((Cmp("target_type", "=", "Patient"), Cmp("target_id", "=", "k1")),))
    closed = IndexMatch("date", "Observation.date", ((Cmp("low", ">=", 1), Cmp("high", "<=", 9)),))
    name = IndexMatch("string", "Patient.name", ((Cmp("norm", "prefix", "张"),),))
    sql, params = probing.where((subject, closed, name), "r")
    assert 'EXISTS (SELECT 1 FROM "idx_reference" WHERE rid = r.rid AND pid = ?' in sql
    assert 'EXISTS (SELECT 1 FROM "idx_date" WHERE rid = r.rid AND pid = ?' in sql
    assert 'r.rid IN (SELECT rid FROM "idx_string"' in sql
    assert params == [3, "Patient", "k1", 2, 1, 9, 4, "张", "张\U0010ffff"]


def test_ids_are_looked_up_by_type_and_id():
    """``_id`` reads the (type, id) index instead of checking every resource's id."""
    sql, params = compiler().where((IdMatch(("a", "b"), types=("Patient",)),), "r")
    assert sql == "r.rid IN (SELECT rid FROM resources WHERE type IN (?) AND id IN (?, ?))"
    assert params == ["Patient", "a", "b"]
    sql, _ = compiler().where((IdMatch(("a",), negate=True, types=("Patient",)),), "r")
    assert sql.startswith("r.rid NOT IN (SELECT rid FROM resources WHERE type IN")


def test_unitless_quantity_is_probed_when_another_criterion_drives():
    """``value-quantity=gt7`` cannot range over the (pid, code, value) index: with a code
    beside it, it is checked per resource; with a unit code it is listed."""
    unitless = IndexMatch("quantity", "Observation.value-quantity", (
        (Cmp("system", "!=", "canonical"), Cmp("value", ">", 7)),))
    sql, _ = compiler().where((CODE, unitless), "r")
    assert 'EXISTS (SELECT 1 FROM "idx_quantity" WHERE rid = r.rid' in sql
    with_unit = IndexMatch("quantity", "Observation.value-quantity", (
        (Cmp("code", "=", "mmol/L"), Cmp("value", ">", 7)),))
    sql, _ = compiler().where((CODE, with_unit), "r")
    assert 'r.rid IN (SELECT rid FROM "idx_quantity"' in sql


def test_a_long_list_of_patients_is_checked_per_resource_beside_a_driver():
    """An access tier's patients (a long list) is checked for the resources another
    criterion finds, the list held as one JSON set and the target compared as a value."""
    patients = tuple(f"p{n}" for n in range(500))
    tier = AnyOf((IndexMatch("reference", "Observation.subject", (
        (Cmp("target_type", "=", "Patient"), Cmp("target_id", "in", patients)),)),))
    assert long_list(tier) and not long_list(CODE)
    sql, params = compiler().where((CODE, tier), "r")
    assert sql.startswith('r.rid IN (SELECT rid FROM "idx_token"')
    assert ('EXISTS (SELECT 1 FROM "idx_reference" WHERE rid = r.rid AND pid = ? AND '
            '(("target_type" = ? AND +"target_id" IN (SELECT value FROM json_each(?)))))'
            ) in sql
    assert params[-1] == '["' + '", "'.join(patients) + '"]'
    listed, _ = compiler().where((tier,), "r")  # alone: listed (a walk is the runner's call)
    assert "EXISTS" not in listed
    ids, values = SqlCompiler(lambda key: 1, lambda pid, code: None).where(
        (IdMatch(patients, types=("Patient",)),), "r")
    assert ids == "r.type IN (?) AND +r.id IN (SELECT value FROM json_each(?))"
    assert values[0] == "Patient"
