"""Decimals are stored and served as they were sent (the precision of a decimal is part of
its value), while search compares them as numbers."""

from __future__ import annotations

import orjson
import pytest

from fhir_server.jsonbytes import Decimal, dumps, loads

SENT = [b"1.00", b"66.899999999999991", b"1.000000000000000000E-245", b"0.10", b"-0.0",
        b"2.5e3", b"120"]
FHIR_JSON = {"content-type": "application/fhir+json"}


def observation(rid: str, value: bytes) -> bytes:
    return (b'{"resourceType":"Observation","id":"' + rid.encode() + b'","status":"final",'
            b'"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},'
            b'"valueQuantity":{"value":' + value + b',"unit":"mmol/L",'
            b'"system":"http://unitsofmeasure.org","code":"mmol/L"}}')


@pytest.mark.parametrize("value", SENT)
def test_a_decimal_comes_back_as_sent(client, value):
    assert client.put("/Observation/o1", content=observation("o1", value),
                      headers=FHIR_JSON).status_code == 201
    for url in ("/Observation/o1", "/Observation/o1/_history/1",
                "/Observation/o1?_elements=valueQuantity", "/Observation?_id=o1",
                "/Observation/o1?_pretty=true"):
        body = client.get(url).content
        assert b'"value":' + value in body.replace(b": ", b":"), (url, body)


def test_search_compares_decimals_as_numbers(client):
    for rid, value in (("a", b"1.00"), ("b", b"66.899999999999991"), ("c", b"120")):
        client.put(f"/Observation/{rid}", content=observation(rid, value), headers=FHIR_JSON)
    found = client.get("/Observation?value-quantity=gt60&_sort=_id").json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["b", "c"]
    assert client.get("/Observation?value-quantity=1").json()["total"] == 1


def test_transactions_and_patches_keep_the_text(client):
    bundle = (b'{"resourceType":"Bundle","type":"transaction","entry":[{"resource":'
              + observation("t1", b"7.50") + b',"request":{"method":"PUT",'
              b'"url":"Observation/t1"}}]}')
    assert client.post("", content=bundle, headers=FHIR_JSON).status_code == 200
    patched = client.patch("/Observation/t1", json=[
        {"op": "replace", "path": "/status", "value": "amended"}],
        headers={"content-type": "application/json-patch+json"})
    assert patched.status_code == 200, patched.text
    assert b'"value":7.50' in client.get("/Observation/t1").content


def test_the_parser_keeps_text_and_value():
    value = loads(b'{"a":1.00,"b":[2.50],"c":3}')
    assert isinstance(value["a"], Decimal) and value["a"] == 1 and value["a"].text == "1.00"
    assert value["c"] == 3 and type(value["c"]) is int
    assert dumps(value) == b'{"a":1.00,"b":[2.50],"c":3}'
    assert dumps({"computed": 0.1 + 0.2}) == orjson.dumps({"computed": 0.1 + 0.2})


def test_an_integer_beyond_64_bits_is_refused_not_a_server_error(client):
    body = (b'{"resourceType":"Patient","id":"big","multipleBirthInteger":'
            b'123456789012345678901234567890}')
    answer = client.put("/Patient/big", content=body, headers=FHIR_JSON)
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == ["Patient.multipleBirthInteger"]
    assert dumps(loads(b'{"n":123456789012345678901234567890}')) == \
        b'{"n":123456789012345678901234567890}'
