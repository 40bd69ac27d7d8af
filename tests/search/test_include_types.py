"""What each ``_include`` / ``_revinclude`` can bring in, as the plan says (a gate lets
included resources through by the criteria of those types only)."""

from __future__ import annotations

import pytest

from fhir_server.app import build_service
from fhir_server.config import Settings


@pytest.mark.parametrize(("pairs", "brings"), [
    ([("_include", "Observation:subject")], [("Device", "Group", "Location", "Patient")]),
    ([("_include", "Observation:subject:Patient")], [("Patient",)]),
    ([("_revinclude", "Provenance:target")], [("Provenance",)]),
])
def test_each_include_names_the_types_it_can_bring(settings: Settings, pairs, brings):
    service = build_service(settings)
    query = service.searcher.parse(("Observation",), pairs).query
    assert [include.brings for include in query.includes] == brings


def test_an_include_to_any_type_brings_any(settings: Settings):
    service = build_service(settings)
    [include] = service.searcher.parse(("Observation",), [("_include", "Observation:focus")]
                                       ).query.includes
    assert include.brings == () or len(include.brings) > 100


def test_include_star_brings_the_targets_of_every_reference(settings: Settings):
    service = build_service(settings)
    [include] = service.searcher.parse(("Patient",), [("_include", "*")]).query.includes
    assert {"Organization", "Practitioner", "PractitionerRole", "Patient"} <= set(
        include.brings) or include.brings == ()
