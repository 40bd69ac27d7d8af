"""Mutations of real FHIR resources, for the fuzz campaign (tests/test_fuzz.py) and its
benchmark (benchmarks/bench_fuzz.py): seeded, so every failing input can be replayed."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -1e-308, 0.1,
    "", " ", "\u0000", "\ud7ff", "𝒳𝒴", "张三", "<div onclick='x'>", "a" * 5000,
    "9999-12-31T23:59:59.999999999+14:00", "0001-01-01T00:00:00-12:00", "2026-02-30",
    "2026-13-01T25:61:61Z", "Patient/", "Patient/../../x", "#", "urn:uuid:", "http://",
    "Patient?identifier=x", "Observation/1/_history/99999999999999999999", "%00", "${x}",
    [], {}, [None], [[]], {"": ""}, {"reference": 7}, {"url": None},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]
ODD_KEYS = ["", "_", "id", "_id", "resourceType", "extension", "modifierExtension", "contained",
            "meta", "valueString", "value[x]", "reference", "url", "text", "div", "fhir_comments",
            "π", "a" * 300]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One fuzz input: a request to replay."""

    method: str
    url: str
    body: bytes

    def describe(self) -> str:
        return f"{self.method} {self.url} {self.body[:300]!r}"


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON value."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            found.append((item, key))
            if isinstance(item[key], dict | list):
                stack.append(item[key])
    return found


def mutate(resource: dict, rng: random.Random, others: list[dict]) -> dict:
    """A copy of ``resource`` with one to three random changes."""
    result = copy.deepcopy(resource)
    for _ in range(rng.randint(1, 3)):
        slots = _slots(result)
        if not slots:
            break
        parent, key = rng.choice(slots)
        action = rng.randrange(7)
        if action == 0 and isinstance(parent, dict):
            del parent[key]
        elif action == 1 and isinstance(parent, dict):
            parent[rng.choice(ODD_KEYS)] = parent.pop(key)
        elif action == 2 and isinstance(parent[key], list):
            parent[key] = parent[key] * rng.choice((2, 50))
        elif action == 3 and others:
            donor = _slots(rng.choice(others))
            if donor:
                source, name = rng.choice(donor)
                parent[key] = copy.deepcopy(source[name])
        elif action == 4:
            result["resourceType"] = rng.choice(["Patient", "Bundle", "Parameters", "Binary",
                                                 "Observation", "Nonsense", 7])
        else:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return result


def encode(value: Any) -> bytes:
    """JSON bytes; integers beyond 64 bits go through the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def damage(body: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: truncation, a stray byte, a repeated slice."""
    if not body:
        return body
    at = rng.randrange(len(body))
    kind = rng.randrange(3)
    if kind == 0:
        return body[:at]
    if kind == 1:
        return body[:at] + bytes([rng.randrange(256)]) + body[at:]
    return body[:at] + body[at:at + 50] * 20 + body[at:]


def attempts(examples: list[dict], variants: int, rng: random.Random) -> Iterator[Attempt]:
    """Requests made of mutated examples: create, update, $validate, a batch, damaged bytes."""
    for example in examples:
        for _ in range(variants):
            yield _attempt(rng.randrange(5), example, rng, examples)


def _attempt(kind: int, example: dict, rng: random.Random, examples: list[dict]) -> Attempt:
    rtype = str(example.get("resourceType"))
    rid = str(example.get("id") or "fuzz")
    body = encode(mutate(example, rng, examples))
    if kind == 0:
        return Attempt("POST", f"/{rtype}", body)
    if kind == 1:
        return Attempt("PUT", f"/{rtype}/{rid}", body)
    if kind == 2:
        return Attempt("POST", f"/{rtype}/$validate", body)
    if kind == 3:
        return Attempt("POST", f"/{rtype}", damage(body, rng))
    entries = [{"fullUrl": f"urn:uuid:{n:08x}-0000-4000-8000-000000000000",
                "resource": mutate(example, rng, examples),
                "request": {"method": rng.choice(["POST", "PUT", "PATCH"]),
                            "url": rng.choice([rtype, f"{rtype}/{rid}", f"{rtype}?_id={rid}"])}}
               for n in range(3)]
    return Attempt("POST", "", encode({"resourceType": "Bundle",
                                       "type": rng.choice(["batch", "transaction"]),
                                       "entry": entries}))
