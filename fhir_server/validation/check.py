"""All checks of a resource in one call: R4 structure, then the alliance business rules."""

from __future__ import annotations

from fhir_server.outcome import Issue, has_errors
from fhir_server.types import Resource
from fhir_server.validation.business import business_rules
from fhir_server.validation.extensions import ExtensionValidator
from fhir_server.validation.structure import StructureValidator


def check_resource(validator: StructureValidator, resource: Resource,
                   resource_type: str | None = None,
                   extensions: ExtensionValidator | None = None) -> list[Issue]:
    """Structure issues; when the structure is sound, business rules and alliance
    extension issues too."""
    issues = validator.validate(resource, resource_type)
    if not has_errors(issues):
        issues += business_rules(resource)
        if extensions is not None:
            issues += extensions.validate(resource)
    return issues
