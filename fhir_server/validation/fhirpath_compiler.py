"""FHIRPath compiled to Python closures, for the invariants of the R4 core definitions.

fhirpathpy interprets its parse tree node by node on every call (tens of µs for a short
invariant) and lacks functions the invariants use (``hasValue``); validation on every write
needs a few µs per invariant. So the parse tree fhirpathpy's parser gives is compiled here,
once, into nested closures over plain JSON values. What is compiled is the part of
FHIRPath (https://hl7.org/fhirpath/N1/) the R4 invariants use: paths (choice elements
included), ``$this``, ``%resource``, ``%rootResource``, ``%context``, ``%ucum``, literals, the
operators (``and or xor implies not``, ``= != ~ < > <= >=``, ``| in contains & + -``, ``is``,
``as``) with their empty-collection rules, and the functions listed in ``FUNCTIONS``.
Anything else raises ``NotCompiled``: the caller lists such invariants as not evaluated.

Types come from the JSON, as far as it tells them: a choice element's suffix
(``answerBoolean`` is a Boolean; which names are choice elements the caller says), a
resource's ``resourceType``, the JSON kind of a value. Dates and times compare as instants
when both sides are dates of the same precision; an uncertain comparison (different
precisions) is empty, as the spec says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from fhirpathpy.parser import parse

from fhir_server import jsonbytes
from fhir_server.jsonbytes import Decimal

Items = list[Any]


@dataclass(frozen=True, slots=True)
class Env:
    resource: Any  # %resource: the resource holding the context
    root: Any  # %rootResource: the outermost resource
    context: Any  # %context: the element the invariant is on
    choices: frozenset[str] = frozenset()  # names of choice elements (value, effective, …)


Fn = Callable[[Env, Items], Items]  # (environment, focus) -> result collection


class NotCompiled(Exception):
    """A part of FHIRPath the compiler does not handle."""


@dataclass(frozen=True, slots=True)
class Choice:
    """A value reached through a choice element, with its type (``valueQuantity``)."""

    value: Any
    type: str


def _plain(item: Any) -> Any:
    return item.value if isinstance(item, Choice) else item


CONSTANTS = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct",
             "loinc": "http://loinc.org"}
DATE = re.compile(r"(\d{4})(-\d{2})?(-\d{2})?(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?")


# -- evaluation helpers -----------------------------------------------------------------

def _children(item: Any) -> Items:
    found: Items = []
    value = _plain(item)
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "resourceType" or key.startswith("_"):
                continue
            found += child if isinstance(child, list) else [child]
    return found


def _member(name: str) -> Fn:
    def member(env: Env, focus: Items) -> Items:
        found: Items = []
        for item in focus:
            value = _plain(item)
            if not isinstance(value, dict):
                continue
            if name in value:
                child = value[name]
                found += child if isinstance(child, list) else [child]
                continue
            if value.get("resourceType") == name:  # a path starting with the type
                found.append(value)
                continue
            if name not in env.choices:
                continue
            for key, child in value.items():  # a choice element: name + its type
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    suffix = key[len(name):]
                    kind = suffix if suffix[0].isupper() and suffix not in PRIMITIVES \
                        else suffix[0].lower() + suffix[1:]
                    found.append(Choice(child, PRIMITIVES.get(suffix, kind)))
        return found
    return member


PRIMITIVES = {name[0].upper() + name[1:]: name for name in (
    "boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
    "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt",
    "positiveInt", "uuid")}


def _type_of(item: Any) -> set[str]:
    """The type names an item answers to (FHIR and System names)."""
    if isinstance(item, Choice):
        return {item.type, item.type.lower(), item.type[0].upper() + item.type[1:]}
    if isinstance(item, bool):
        return {"boolean", "Boolean"}
    if isinstance(item, int):
        return {"integer", "Integer", "decimal", "Decimal"}
    if isinstance(item, float):
        return {"decimal", "Decimal"}
    if isinstance(item, str):
        return {"string", "String", "uri", "url", "canonical", "code", "id", "markdown"}
    if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
        return {item["resourceType"], "Resource", "DomainResource"}
    return set()


def _boolean(items: Items) -> bool | None:
    if not items:
        return None
    if len(items) == 1:
        value = _plain(items[0])
        return value if isinstance(value, bool) else True
    raise NotCompiled("a boolean of several items")


def _as_items(value: bool | None) -> Items:
    return [] if value is None else [value]


def _when(text: str) -> tuple[int, datetime] | None:
    """A date or time as (precision, instant), or None if the text is not one."""
    match = DATE.fullmatch(text)
    if match is None:
        return None
    precision = sum(1 for group in (2, 3, 4, 5) if match.group(group)) + 1
    year = int(match.group(1))
    month = int(match.group(2)[1:]) if match.group(2) else 1
    day = int(match.group(3)[1:]) if match.group(3) else 1
    if not match.group(4):
        return precision, datetime(year, month, day, tzinfo=UTC)
    zone = match.group(7)
    if zone is None:  # a time without zone: compare as UTC (close enough for ordering)
        text = text + "+00:00"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return precision + (1 if match.group(6) else 0), parsed


def _compare(left: Any, right: Any) -> int | None:
    left, right = _plain(left), _plain(right)
    if isinstance(left, str) and isinstance(right, str):
        when_left, when_right = _when(left), _when(right)
        if when_left and when_right:
            if when_left[0] != when_right[0]:
                return None  # different precisions: uncertain
            return (when_left[1] > when_right[1]) - (when_left[1] < when_right[1])
        return (left > right) - (left < right)
    if isinstance(left, int | float) and isinstance(right, int | float) \
            and not isinstance(left, bool) and not isinstance(right, bool):
        return (left > right) - (left < right)
    raise NotCompiled(f"comparing {type(left).__name__} with {type(right).__name__}")


def _equal(left: Any, right: Any) -> bool:
    return bool(_plain(left) == _plain(right))


def _key(item: Any) -> Any:
    """A hashable stand-in for an item, equal when the items are equal."""
    value = _plain(item)
    if isinstance(value, dict | list):
        return jsonbytes.dumps(value, option=orjson.OPT_SORT_KEYS)
    return (type(value) is bool, value)


def _unique(items: Items) -> Items:
    seen: set[Any] = set()
    found: Items = []
    for item in items:
        key = _key(item)
        if key not in seen:
            seen.add(key)
            found.append(item)
    return found


def _distinct(items: Items) -> bool:
    return len(_unique(items)) == len(items)


# -- the compiler -----------------------------------------------------------------------

def _compile(node: dict[str, Any]) -> Fn:
    kind = node["type"]
    handler = NODES.get(kind)
    if handler is None:
        raise NotCompiled(kind)
    return handler(node)


def _only_child(node: dict[str, Any]) -> Fn:
    return _compile(node["children"][0])


def _invocation_expression(node: dict[str, Any]) -> Fn:
    source, step = node["children"]
    left = _compile(source)
    right = _invocation(step)
    return lambda env, focus: right(env, left(env, focus))


def _invocation(node: dict[str, Any]) -> Fn:
    kind = node["type"]
    if kind == "MemberInvocation":
        return _member(node["children"][0]["text"])
    if kind == "FunctionInvocation":
        return _function(node["children"][0])
    if kind == "ThisInvocation":
        return lambda env, focus: focus
    raise NotCompiled(kind)


def _term(node: dict[str, Any]) -> Fn:
    child = node["children"][0]
    kind = child["type"]
    if kind == "InvocationTerm":
        return _invocation(child["children"][0])
    if kind == "LiteralTerm":
        return _literal(child["children"][0])
    if kind == "ParenthesizedTerm":
        return _compile(child["children"][0])
    if kind == "ExternalConstantTerm":
        return _constant(child["children"][0])
    raise NotCompiled(kind)


def _literal(node: dict[str, Any]) -> Fn:
    kind, text = node["type"], node.get("text", "")
    value: Any
    if kind == "StringLiteral":
        value = _unquote(text)
    elif kind == "BooleanLiteral":
        value = text == "true"
    elif kind == "NumberLiteral":
        value = float(text) if "." in text else int(text)
    elif kind == "NullLiteral":
        return lambda env, focus: []
    else:
        raise NotCompiled(kind)
    return lambda env, focus: [value]


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), body)


def _constant(node: dict[str, Any]) -> Fn:
    name = node["children"][0].get("text", "").strip("`'")
    if name == "resource":
        return lambda env, focus: [env.resource]
    if name == "rootResource":
        return lambda env, focus: [env.root]
    if name == "context":
        return lambda env, focus: [env.context]
    if name in CONSTANTS:
        value = CONSTANTS[name]
        return lambda env, focus: [value]
    raise NotCompiled(f"%{name}")


def _operands(node: dict[str, Any]) -> tuple[Fn, Fn]:
    left, right = node["children"]
    return _compile(left), _compile(right)


def _logic(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    left, right = _operands(node)

    def evaluate(env: Env, focus: Items) -> Items:
        a = _boolean(left(env, focus))
        if op == "and":
            if a is False:
                return [False]
            b = _boolean(right(env, focus))
            return [False] if b is False else ([True] if a and b else [])
        if op == "or":
            if a is True:
                return [True]
            b = _boolean(right(env, focus))
            return [True] if b is True else ([False] if a is False and b is False else [])
        if op == "implies":
            if a is False:
                return [True]
            b = _boolean(right(env, focus))
            if b is True:
                return [True]
            return [False] if a is True and b is False else []
        b = _boolean(right(env, focus))  # xor
        return [] if a is None or b is None else [a != b]
    return evaluate


def _equality(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    left, right = _operands(node)

    def evaluate(env: Env, focus: Items) -> Items:
        a, b = left(env, focus), right(env, focus)
        if not a or not b:
            return [] if op in ("=", "!=") else [op in ("~",) and not a and not b]
        same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        if op in ("~", "!~") and all(isinstance(_plain(x), str) for x in a + b):
            same = len(a) == len(b) and all(
                " ".join(_plain(x).lower().split()) == " ".join(_plain(y).lower().split())
                for x, y in zip(a, b, strict=True))
        return [same if op in ("=", "~") else not same]
    return evaluate


ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0, ">=": lambda c: c >= 0}


def _inequality(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    left, right = _operands(node)
    test = ORDER_TESTS[op]

    def evaluate(env: Env, focus: Items) -> Items:
        a, b = left(env, focus), right(env, focus)
        if len(a) != 1 or len(b) != 1:
            return []
        compared = _compare(a[0], b[0])
        return [] if compared is None else [test(compared)]
    return evaluate


def _union(node: dict[str, Any]) -> Fn:
    left, right = _operands(node)

    return lambda env, focus: _unique(left(env, focus) + right(env, focus))


def _membership(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    left, right = _operands(node)

    def evaluate(env: Env, focus: Items) -> Items:
        a, b = left(env, focus), right(env, focus)
        element, collection = (a, b) if op == "in" else (b, a)
        if not element:
            return []
        if len(element) > 1:
            raise NotCompiled("membership of several items")
        key = _key(element[0])
        return [any(_key(item) == key for item in collection)]
    return evaluate


def _additive(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    left, right = _operands(node)

    def evaluate(env: Env, focus: Items) -> Items:
        a, b = left(env, focus), right(env, focus)
        if op == "&":
            return ["".join(str(_plain(x)) for x in a[:1]) + "".join(
                str(_plain(x)) for x in b[:1])]
        if len(a) != 1 or len(b) != 1:
            return []
        x, y = _plain(a[0]), _plain(b[0])
        if op == "+":
            return [x + y] if type(x) is type(y) or all(
                isinstance(v, int | float) for v in (x, y)) else []
        return [x - y]
    return evaluate


def _type_expression(node: dict[str, Any]) -> Fn:
    op = node["terminalNodeText"][0]
    source = _compile(node["children"][0])
    name = node["children"][1]["text"].split(".")[-1]
    if op == "is":
        return lambda env, focus: _is(source(env, focus), name)
    return lambda env, focus: [i for i in source(env, focus) if name in _type_of(i)]


def _is(items: Items, name: str) -> Items:
    if not items:
        return []
    return [name in _type_of(items[0])]


def _polarity(node: dict[str, Any]) -> Fn:
    operand = _compile(node["children"][0])
    sign = node["terminalNodeText"][0]
    return lambda env, focus: [(-1 if sign == "-" else 1) * _plain(x)
                               for x in operand(env, focus)]


NODES: dict[str, Callable[[dict[str, Any]], Fn]] = {
    "EntireExpression": _only_child, "TermExpression": _term,
    "InvocationExpression": _invocation_expression,
    "AndExpression": _logic, "OrExpression": _logic, "ImpliesExpression": _logic,
    "EqualityExpression": _equality, "InequalityExpression": _inequality,
    "UnionExpression": _union, "MembershipExpression": _membership,
    "AdditiveExpression": _additive, "TypeExpression": _type_expression,
    "PolarityExpression": _polarity,
}


# -- functions --------------------------------------------------------------------------

def _function(node: dict[str, Any]) -> Fn:
    name = node["children"][0]["text"]
    params = [_compile(p) for p in node["children"][1]["children"]] \
        if len(node["children"]) > 1 else []
    if name in ("as", "is", "ofType"):
        type_name = node["children"][1]["children"][0]["text"].split(".")[-1]
        if name == "is":
            return lambda env, focus: _is(focus, type_name)
        return lambda env, focus: [i for i in focus if type_name in _type_of(i)]
    make = FUNCTIONS.get(name)
    if make is None:
        raise NotCompiled(f"{name}()")
    return make(params)


def _on_each(env: Env, focus: Items, criteria: Fn) -> list[tuple[Any, Items]]:
    return [(item, criteria(env, [item])) for item in focus]


def _exists(params: list[Fn]) -> Fn:
    if not params:
        return lambda env, focus: [bool(focus)]
    criteria = params[0]
    return lambda env, focus: [any(_boolean(r) for _, r in _on_each(env, focus, criteria))]


def _where(params: list[Fn]) -> Fn:
    criteria = params[0]
    return lambda env, focus: [i for i, r in _on_each(env, focus, criteria) if _boolean(r)]


def _select(params: list[Fn]) -> Fn:
    projection = params[0]
    return lambda env, focus: [x for _, r in _on_each(env, focus, projection) for x in r]


def _all(params: list[Fn]) -> Fn:
    criteria = params[0]
    return lambda env, focus: [all(_boolean(r) for _, r in _on_each(env, focus, criteria))]


def _iif(params: list[Fn]) -> Fn:
    condition, then = params[0], params[1]
    otherwise = params[2] if len(params) > 2 else (lambda env, focus: [])
    return lambda env, focus: then(env, focus) if _boolean(condition(env, focus)) \
        else otherwise(env, focus)


def _string_test(test: Callable[[str, str], bool]) -> Callable[[list[Fn]], Fn]:
    def make(params: list[Fn]) -> Fn:
        argument = params[0]

        def evaluate(env: Env, focus: Items) -> Items:
            if len(focus) != 1:
                return []
            text, arg = _plain(focus[0]), argument(env, focus)
            if not isinstance(text, str) or len(arg) != 1:
                return []
            return [test(text, str(_plain(arg[0])))]
        return evaluate
    return make


def _descendants(env: Env, focus: Items) -> Items:
    found: Items = []
    pending = list(focus)
    while pending:
        children = [c for item in pending for c in _children(item)]
        found += children
        pending = children
    return found


def _to_integer(env: Env, focus: Items) -> Items:
    if len(focus) != 1:
        return []
    value = _plain(focus[0])
    if isinstance(value, bool):
        return [int(value)]
    if isinstance(value, int):
        return [value]
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
        return [int(value)]
    return []


def _to_string(env: Env, focus: Items) -> Items:
    if len(focus) != 1:
        return []
    value = _plain(focus[0])
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, Decimal):
        return [value.text]  # as written: 1.50 stays 1.50
    return [str(value)] if isinstance(value, str | int | float) else []


def _substring(params: list[Fn]) -> Fn:
    def evaluate(env: Env, focus: Items) -> Items:
        if len(focus) != 1 or not isinstance(_plain(focus[0]), str):
            return []
        text = _plain(focus[0])
        start = params[0](env, focus)
        length = params[1](env, focus) if len(params) > 1 else []
        if not start or not 0 <= start[0] < len(text):
            return []
        end = start[0] + length[0] if length else None
        return [text[start[0]:end]]
    return evaluate


def _replace_matches(params: list[Fn]) -> Fn:
    def evaluate(env: Env, focus: Items) -> Items:
        if len(focus) != 1 or not isinstance(_plain(focus[0]), str):
            return []
        pattern, substitution = params[0](env, focus), params[1](env, focus)
        return [re.sub(pattern[0], substitution[0], _plain(focus[0]))]
    return evaluate


def _with_other(combine: Callable[[Items, Items], Items]) -> Callable[[list[Fn]], Fn]:
    def make(params: list[Fn]) -> Fn:
        other = params[0]
        return lambda env, focus: combine(focus, other(env, focus))
    return make


def _among(items: Items, others: Items, inside: bool) -> Items:
    keys = {_key(other) for other in others}
    return [item for item in items if (_key(item) in keys) is inside]


def _no_params(fn: Fn) -> Callable[[list[Fn]], Fn]:
    return lambda params: fn


def _has_value(env: Env, focus: Items) -> Items:
    return [len(focus) == 1 and isinstance(_plain(focus[0]), str | int | float | bool)]


FUNCTIONS: dict[str, Callable[[list[Fn]], Fn]] = {
    "exists": _exists,
    "empty": _no_params(lambda env, focus: [not focus]),
    "not": _no_params(lambda env, focus: _as_items(
        None if (b := _boolean(focus)) is None else not b)),
    "count": _no_params(lambda env, focus: [len(focus)]),
    "first": _no_params(lambda env, focus: focus[:1]),
    "last": _no_params(lambda env, focus: focus[-1:]),
    "tail": _no_params(lambda env, focus: focus[1:]),
    "hasValue": _no_params(_has_value),
    "isDistinct": _no_params(lambda env, focus: [_distinct(focus)]),
    "distinct": _no_params(lambda env, focus: _unique(focus)),
    "children": _no_params(lambda env, focus: [c for i in focus for c in _children(i)]),
    "descendants": _no_params(_descendants),
    "toInteger": _no_params(_to_integer),
    "toString": _no_params(_to_string),
    "length": _no_params(lambda env, focus: [len(_plain(focus[0]))] if len(focus) == 1
                         and isinstance(_plain(focus[0]), str) else []),
    "trace": lambda params: lambda env, focus: focus,
    "where": _where, "select": _select, "all": _all, "iif": _iif,
    "matches": _string_test(lambda text, pattern: re.search(pattern, text) is not None),
    "startsWith": _string_test(str.startswith),
    "endsWith": _string_test(str.endswith),
    "contains": _string_test(lambda text, part: part in text),
    "substring": _substring,
    "replaceMatches": _replace_matches,
    "combine": _with_other(lambda a, b: a + b),
    "union": _with_other(lambda a, b: _unique(a + b)),
    "intersect": _with_other(lambda a, b: _unique(_among(a, b, True))),
    "exclude": _with_other(lambda a, b: _among(a, b, False)),
}


@cache
def compile_fhirpath(expression: str) -> Fn:
    """The expression as a closure; raises ``NotCompiled`` for what is not handled."""
    try:
        tree = parse(expression)  # type: ignore[no-untyped-call]
    except Exception as error:  # the parser's own errors: not ours to type
        raise NotCompiled(f"unparsable: {error}") from error
    return _compile({"type": "EntireExpression", "children": tree["children"]})
