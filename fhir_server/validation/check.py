"""All checks of a resource in one call: R4 structure, then the alliance business rules
(for a Bundle, its entries' rules too)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

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
                     require_profiles: Iterable[str] = (),
                     allow_any_extension: bool = False) -> Checks:
        """The checks of an alliance package: its StructureDefinitions (``profiles``) and
        the ValueSets of its ``terminology`` (and, if allowed, extensions defined nowhere)."""
        definitions = [r for r in profiles if r.get("resourceType") == "StructureDefinition"]
        return cls(StructureValidator(), ExtensionValidator(definitions, allow_any_extension),
                   ProfileValidator(definitions, value_sets(terminology), require_profiles,
                                    CodingHints(terminology), complete_systems(terminology)))

    def rules(self, resource: Resource, profiles: Iterable[str] = ()) -> list[Issue]:
        """Business rules, alliance extensions and profiles (claimed ones and ``profiles``)
        (422 when broken). A Bundle's entries are checked too, each against those of
        ``profiles`` made for its type."""
        issues = business_rules(resource)
        if self.extensions is not None:
            issues += self.extensions.validate(resource)
        if resource.get("resourceType") != "Bundle":
            return issues + self._profiled(resource, profiles)
        issues += self._profiled(resource, self._of_type(profiles, "Bundle", True))
        for index, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict):
                rtype = inner.get("resourceType")
                issues += [_within(i, rtype, f"Bundle.entry[{index}].resource")
                           for i in self.rules(inner, self._of_type(profiles, rtype, False))]
        return issues

    def _profiled(self, resource: Resource, profiles: Iterable[str]) -> list[Issue]:
        return self.profiles.validate(resource, profiles) if self.profiles is not None else []

    def _of_type(self, profiles: Iterable[str], rtype: object, unknown: bool) -> list[str]:
        """The profiles made for a type (and, if ``unknown``, those not known here)."""
        known = self.profiles.profiles if self.profiles is not None else {}
        return [url for url in profiles
                if (known[url].type == rtype if url in known else unknown)]


def _within(issue: Issue, resource_type: object, where: str) -> Issue:
    """An entry's issue, its expression told from the Bundle."""
    expression = issue.expression or ""
    if isinstance(resource_type, str) and expression.startswith(resource_type):
        expression = where + expression[len(resource_type):]
    else:
        expression = f"{where}.{expression}" if expression else where
    return replace(issue, expression=expression)


def check_resource(checks: Checks, resource: Resource, resource_type: str | None = None,
                   profiles: Iterable[str] = ()) -> list[Issue]:
    """Structure issues; when the structure is sound, the alliance rules' issues too."""
    issues = checks.structure.validate(resource, resource_type)
    if not has_errors(issues):
        issues += checks.rules(resource, profiles)
    return issues
