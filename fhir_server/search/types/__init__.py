"""One module per search parameter type: what to index, and how to match a query value.

Each exposes ``extract(param, values, context) -> rows`` and
``compile(param, modifier, values, context) -> plan node``; ``TYPES`` maps the
SearchParameter.type code to its module. An unsupported modifier is a 400, never skipped.
"""

from __future__ import annotations

from fhir_server.search.types import (
    composite,
    date,
    number,
    quantity,
    reference,
    string,
    token,
    uri,
)
from fhir_server.search.types.base import ParamType

TYPES: dict[str, ParamType] = {
    "token": token.TYPE,
    "string": string.TYPE,
    "reference": reference.TYPE,
    "date": date.TYPE,
    "number": number.TYPE,
    "quantity": quantity.TYPE,
    "uri": uri.TYPE,
    "composite": composite.TYPE,
}
