"""Issues and OperationOutcome: the one shape every error and warning takes.

Spec: https://hl7.org/fhir/R4/operationoutcome.html. Leaf module: imports nothing of ours,
so validation, search, core and rest can all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: severity, IssueType code, what went wrong and where."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code}
        issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding the given issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def information(message: str) -> dict[str, Any]:
    """An OperationOutcome with one informational issue (``Prefer: return=OperationOutcome``)."""
    return operation_outcome([Issue("informational", message, severity="information")])


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)
