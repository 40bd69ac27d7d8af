"""The framework-free request and response every handler sees (batch entries too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class FhirRequest:
    """One FHIR request: method, path below the base, query pairs, headers, body."""

    method: str
    path: str  # below the FHIR base, without leading slash: "Patient/1/_history"
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    base_url: str = "http://localhost:8080/fhir"
    interaction: str = ""  # set by the router: the FHIR code of the route that answers
    resource_type: str = ""  # set by the router: the type named in the path, if served
    grant: object = None  # set by the auth guard: what the access token allows
    client: str = ""  # the network address of the client
    touched: list[str] = field(default_factory=list)  # Type/id read or found (for the audit)

    def param(self, name: str) -> str | None:
        """The last value of a query parameter, or None."""
        for key, value in reversed(self.query):
            if key == name:
                return value
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(slots=True)
class FhirResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: Path | None = None  # streamed instead of ``body`` (export files)
