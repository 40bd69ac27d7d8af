"""The resource types this server holds. Data, so adding a type is one line."""

from __future__ import annotations

SUPPORTED_TYPES: tuple[str, ...] = (
    # alliance members, staff and patients
    "Organization",
    "OrganizationAffiliation",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    # referral, results, imaging
    "ServiceRequest",
    "Task",
    "DiagnosticReport",
    "Observation",
    "ImagingStudy",
    "Condition",
    "Provenance",
    "Endpoint",
    "Group",
    "AuditEvent",
    "Binary",
    # conformance and terminology
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "SearchParameter",
    "NamingSystem",
)


class ResourceRegistry:
    """Which resource types are served; ``is_supported`` is on every request's path."""

    def __init__(self, types: tuple[str, ...] = SUPPORTED_TYPES) -> None:
        self.types = frozenset(types)
        self.ordered = tuple(sorted(types))

    def is_supported(self, resource_type: str) -> bool:
        return resource_type in self.types
