"""All checks of a resource in one call: R4 structure, then the alliance business rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhir_server.outcome import Issue, has_errors
from fhir_server.types import Resource
from fhir_server.validation.business import business_rules
from fhir_server.validation.extensions import ExtensionValidator
from fhir_server.validation.hints import CodingHints
from fhir_server.validation.profiles import ProfileValidator, complete_systems, value_sets
from fhir_server.validation.structure import StructureValidator


@dataclass(frozen=True, slots=True)
class Checks:
    """Everything a resource is checked against."""

    structure: StructureValidator
    extensions: ExtensionValidator | None = None
    profiles: ProfileValidator | None = None

    @classmethod
    def from_package(cls, profiles: list[Resource], terminology: list[Resource],
                     require_profiles: Iterable[str] = ()) -> Checks:
        """The checks of an alliance package: its StructureDefinitions (``profiles``) and
        the ValueSets of its ``terminology``."""
        definitions = [r for r in profiles if r.get("resourceType") == "StructureDefinition"]
        return cls(StructureValidator(), ExtensionValidator(definitions),
                   ProfileValidator(definitions, value_sets(terminology), require_profiles,
                                    CodingHints(terminology), complete_systems(terminology)))

    def rules(self, resource: Resource, profiles: Iterable[str] = ()) -> list[Issue]:
        """Business rules, alliance extensions and profiles (claimed ones and ``profiles``)
        (422 when broken)."""
        issues = business_rules(resource)
        if self.extensions is not None:
            issues += self.extensions.validate(resource)
        if self.profiles is not None:
            issues += self.profiles.validate(resource, profiles)
        return issues


def check_resource(checks: Checks, resource: Resource, resource_type: str | None = None,
                   profiles: Iterable[str] = ()) -> list[Issue]:
    """Structure issues; when the structure is sound, the alliance rules' issues too."""
    issues = checks.structure.validate(resource, resource_type)
    if not has_errors(issues):
        issues += checks.rules(resource, profiles)
    return issues
