"""The route table: every FHIR interaction this server answers, one line each."""

from __future__ import annotations

from fhir_server.rest.interactions.capabilities import capabilities, smart_configuration
from fhir_server.rest.interactions.create import create
from fhir_server.rest.interactions.delete import delete
from fhir_server.rest.interactions.history import history
from fhir_server.rest.interactions.patch import patch
from fhir_server.rest.interactions.read import read
from fhir_server.rest.interactions.search_compartment import search_compartment
from fhir_server.rest.interactions.search_system import search_system
from fhir_server.rest.interactions.search_type import search_type
from fhir_server.rest.interactions.transaction import transaction
from fhir_server.rest.interactions.update import update
from fhir_server.rest.interactions.vread import vread
from fhir_server.rest.operations.api_docs import api_docs, swagger_ui
from fhir_server.rest.operations.everything import everything
from fhir_server.rest.operations.export import export_file, export_kickoff, export_status
from fhir_server.rest.operations.expunge import expunge
from fhir_server.rest.operations.referral_kpis import referral_kpis
from fhir_server.rest.operations.reindex import reindex
from fhir_server.rest.operations.terminology import terminology
from fhir_server.rest.operations.validate import validate
from fhir_server.rest.router import Route

ROUTES: list[Route] = [
    Route("GET", "metadata", ("capabilities",), capabilities),
    Route("GET", ".well-known/smart-configuration", ("smart-configuration",),
          smart_configuration),
    Route("GET", "api-docs", ("api-docs",), api_docs),
    Route("GET", "swagger-ui", ("api-docs",), swagger_ui),
    Route("GET", "swagger-ui/{asset}", ("api-docs",), swagger_ui),
    Route("POST", "$reindex", ("reindex",), reindex),
    *[Route(method, pattern, ("export",), export_kickoff) for method in ("GET", "POST")
      for pattern in ("$export", "Patient/$export", "Group/{id}/$export")],
    Route("GET", "$export-status/{job}", ("export-status",), export_status),
    Route("DELETE", "$export-status/{job}", ("export-status",), export_status),
    Route("GET", "$export-file/{job}/{name}", ("export-file",), export_file),
    Route("POST", "{type}/{id}/$expunge", ("expunge",), expunge),
    Route("POST", "{type}/$validate", ("validate",), validate),
    Route("POST", "{type}/{id}/$validate", ("validate",), validate),
    *[Route(method, pattern, ("everything",), everything) for method in ("GET", "POST")
      for pattern in ("Patient/$everything", "Patient/{id}/$everything")],
    *[Route(method, pattern, ("referral-kpis",), referral_kpis) for method in ("GET", "POST")
      for pattern in ("$referral-kpis", "Organization/{id}/$referral-kpis")],
    *[Route(method, pattern, ("terminology",), terminology)
      for method in ("GET", "POST")
      for pattern in ("{type}/{$operation}", "{type}/{id}/{$operation}")],
    Route("GET", "", ("search-system",), search_system),
    Route("POST", "_search", ("search-system",), search_system),
    Route("POST", "", ("transaction", "batch"), transaction),
    Route("GET", "_history", ("history-system",), history),
    Route("GET", "{type}", ("search-type",), search_type),
    Route("POST", "{type}/_search", ("search-type",), search_type),
    Route("POST", "{type}", ("create",), create),
    Route("PUT", "{type}", ("update",), update),
    Route("PATCH", "{type}", ("patch",), patch),
    Route("DELETE", "{type}", ("delete",), delete),
    Route("GET", "{type}/_history", ("history-type",), history),
    Route("GET", "{type}/{id}", ("read",), read),
    Route("PUT", "{type}/{id}", ("update",), update),
    Route("PATCH", "{type}/{id}", ("patch",), patch),
    Route("DELETE", "{type}/{id}", ("delete",), delete),
    Route("GET", "{type}/{id}/_history", ("history-instance",), history),
    Route("GET", "{type}/{id}/{compartment_type}", ("search-compartment",), search_compartment),
    Route("GET", "{type}/{id}/_history/{vid}", ("vread",), vread),
]
