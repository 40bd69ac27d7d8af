"""Version metadata: instants, ETags, and the canonical bytes of a stamped version."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from fhir_server import jsonbytes
from fhir_server.core.errors import FhirError
from fhir_server.types import Resource

ETAG = re.compile(r'\s*(?:W/)?"?([0-9]+)"?\s*')
DATE_TIME = re.compile(
    r"(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})"
    r"(T(?P<time>[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?")


def format_instant(ms: int) -> str:
    """Epoch milliseconds as a FHIR instant, e.g. ``2026-11-25T10:42:08.123Z``."""
    return f"{_instant_second(ms // 1000)}{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _instant_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def http_date(ms: int) -> str:
    """Epoch milliseconds as an HTTP date (Last-Modified)."""
    return _http_date(ms // 1000)


@lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def parse_instant_ms(text: str, parameter: str) -> int:
    """A FHIR date/dateTime/instant (missing parts start the period) as epoch milliseconds."""
    match = DATE_TIME.fullmatch(text.strip().replace(" ", "+"))
    if not match:
        raise FhirError(f"Invalid date/time {text!r}", parameter)
    if match["time"] and not match["tz"]:
        raise FhirError(f"A time in {text!r} needs a timezone", parameter)
    year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
    clock = (match["time"] or "00:00") + ("" if match["time"] and match["time"].count(":") > 1
                                          else ":00")
    zone = match["tz"] or "+00:00"
    try:
        moment = datetime.fromisoformat(
            f"{year:04d}-{month:02d}-{day:02d}T{clock}{zone.replace('Z', '+00:00')}")
    except ValueError:
        raise FhirError(f"Invalid date/time {text!r}", parameter) from None
    return int(moment.timestamp() * 1000)


def parse_etag(value: str) -> int:
    """``W/"3"`` (or a bare ``3``) to version 3."""
    match = ETAG.fullmatch(value)
    if not match:
        raise FhirError(f"Invalid ETag {value!r}; expected W/\"<versionId>\"", "If-Match")
    return int(match[1])


def etag(version: int) -> str:
    return f'W/"{version}"'


CHAIN_SEQUENCE = "http://alliance-fhir.org/fhir/StructureDefinition/audit-sequence"
CHAIN_PREVIOUS = "http://alliance-fhir.org/fhir/StructureDefinition/audit-previous-hash"


def linked_renderer(resource: Resource) -> Callable[[int, int, int, str], bytes]:
    """A renderer of a link of the audit chain: the resource with its sequence number and
    the SHA-256 of the previous link's stored bytes as extensions."""

    def render(version: int, last_updated_ms: int, seq: int, previous: str) -> bytes:
        links: list[dict[str, object]] = [{"url": CHAIN_SEQUENCE, "valueInteger": seq}]
        if previous:
            links.append({"url": CHAIN_PREVIOUS, "valueString": previous})
        linked = {**resource, "extension": [*(resource.get("extension") or ()), *links]}
        return renderer(linked)(version, last_updated_ms)

    return render


def renderer(resource: Resource) -> Callable[[int, int], bytes]:
    """A function that stamps ``meta.versionId`` / ``meta.lastUpdated`` and serialises."""

    def render(version: int, last_updated_ms: int) -> bytes:
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = format_instant(last_updated_ms)
        stamped = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
        stamped.update((k, v) for k, v in resource.items() if k not in stamped)
        return jsonbytes.dumps(stamped)

    return render
