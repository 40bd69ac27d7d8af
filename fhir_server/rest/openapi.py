"""An OpenAPI 3.0 description of the server, generated from its CapabilityStatement: every
served type with its interactions and search parameters, the system interactions and the
operations. What the route table answers is what the document says.
Spec: https://spec.openapis.org/oas/v3.0.3
"""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"
RESOURCE = {"$ref": "#/components/schemas/Resource"}
BUNDLE = {"$ref": "#/components/schemas/Bundle"}
ID = {"name": "id", "in": "path", "required": True,
      "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}}
VID = {"name": "vid", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}
PAGING = [{"name": n, "in": "query", "required": False, "schema": {"type": t},
           "description": d} for n, t, d in (
    ("_count", "integer", "matches per page"),
    ("_sort", "string", "sort keys, comma-separated, '-' for descending"),
    ("_total", "string", "none, estimate or accurate"),
    ("_summary", "string", "true, text, data, count or false"),
    ("_elements", "string", "top-level elements to return, comma-separated"),
    ("_include", "string", "Type:parameter[:target] or *"),
    ("_revinclude", "string", "Type:parameter[:target] or *"))]
SEARCH_TYPES = {"number": "number", "date": "string", "string": "string", "token": "string",
                "reference": "string", "composite": "string", "quantity": "string",
                "uri": "string", "special": "string"}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {FHIR_JSON: {"schema": schema}}}


def _answers(ok: str, schema: dict[str, Any] | None, *errors: str) -> dict[str, Any]:
    """The responses of an operation: its success, then OperationOutcome errors."""
    outcome = {"$ref": "#/components/responses/Error"}
    answers: dict[str, Any] = {ok: {"description": "success"}}
    if schema is not None:
        answers[ok]["content"] = {FHIR_JSON: {"schema": schema}}
    answers.update({code: outcome for code in errors})
    return answers


def _operation(op_id: str, summary: str, tag: str, answers: dict[str, Any],
               parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                                 "responses": answers}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _search_parameters(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": p["name"], "in": "query", "required": False,
             "schema": {"type": SEARCH_TYPES.get(p["type"], "string")},
             "description": f"{p['type']} search parameter ({p.get('definition', '')})"}
            for p in resource.get("searchParam", [])] + PAGING


def _type_paths(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rtype = resource["type"]
    codes = {i["code"] for i in resource.get("interaction", [])}
    paths: dict[str, dict[str, Any]] = {f"/{rtype}": {}, f"/{rtype}/{{id}}": {}}
    if "search-type" in codes:
        paths[f"/{rtype}"]["get"] = _operation(
            f"search{rtype}", f"Search {rtype}", rtype, _answers("200", BUNDLE, "400"),
            _search_parameters(resource))
    if "create" in codes:
        paths[f"/{rtype}"]["post"] = _operation(
            f"create{rtype}", f"Create a {rtype}", rtype,
            _answers("201", RESOURCE, "400", "409", "412", "422"), body=_body(RESOURCE))
    instance = paths[f"/{rtype}/{{id}}"]
    if "read" in codes:
        instance["get"] = _operation(f"read{rtype}", f"Read a {rtype}", rtype,
                                     _answers("200", RESOURCE, "404", "410"), [ID])
    if "update" in codes:
        instance["put"] = _operation(f"update{rtype}", f"Update or create a {rtype}", rtype,
                                     _answers("200", RESOURCE, "400", "409", "412", "422"),
                                     [ID], _body(RESOURCE))
    if "patch" in codes:
        instance["patch"] = _operation(
            f"patch{rtype}", f"Patch a {rtype}", rtype,
            _answers("200", RESOURCE, "400", "404", "412", "422"), [ID],
            {"required": True, "content": {
                "application/json-patch+json": {"schema": {"type": "array",
                                                           "items": {"type": "object"}}},
                FHIR_JSON: {"schema": {"$ref": "#/components/schemas/Resource"}}}})
    if "delete" in codes:
        instance["delete"] = _operation(f"delete{rtype}", f"Delete a {rtype}", rtype,
                                        _answers("200", None, "404", "409", "412"), [ID])
    if "history-instance" in codes:
        paths[f"/{rtype}/{{id}}/_history"] = {"get": _operation(
            f"history{rtype}", f"The versions of a {rtype}", rtype,
            _answers("200", BUNDLE, "400", "404"), [ID])}
    if "vread" in codes:
        paths[f"/{rtype}/{{id}}/_history/{{vid}}"] = {"get": _operation(
            f"vread{rtype}", f"One version of a {rtype}", rtype,
            _answers("200", RESOURCE, "404", "410"), [ID, VID])}
    if "history-type" in codes:
        paths[f"/{rtype}/_history"] = {"get": _operation(
            f"historyType{rtype}", f"Every {rtype} version", rtype,
            _answers("200", BUNDLE, "400"))}
    return {path: item for path, item in paths.items() if item}


def _operation_paths(rest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The operations the CapabilityStatement names, at the levels this server answers."""
    names = {o["name"] for o in rest.get("operation", [])} | {
        o["name"] for r in rest["resource"] for o in r.get("operation", [])}
    paths: dict[str, dict[str, Any]] = {}
    if "everything" in names:
        since = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                 for n in ("_since", "_type")] + PAGING[:1]
        paths["/Patient/{id}/$everything"] = {"get": _operation(
            "everythingPatient", "A patient and its whole compartment", "Patient",
            _answers("200", BUNDLE, "400", "404", "410"), [ID, *since])}
        paths["/Patient/$everything"] = {"get": _operation(
            "everythingPatients", "Every patient and their compartments", "Patient",
            _answers("200", BUNDLE, "400"), since)}
    if "validate" in names:
        paths["/{type}/$validate"] = {"post": _operation(
            "validate", "Validate a resource", "operations", _answers("200", RESOURCE, "400"),
            [{"name": "type", "in": "path", "required": True, "schema": {"type": "string"}}],
            _body(RESOURCE))}
    if "reindex" in names:
        paths["/$reindex"] = {"post": _operation(
            "reindex", "Rebuild the search index", "operations", _answers("200", RESOURCE))}
    if "expunge" in names:
        paths["/{type}/{id}/$expunge"] = {"post": _operation(
            "expunge", "Erase a resource and every version of it", "operations",
            _answers("200", RESOURCE, "404", "409"),
            [{"name": "type", "in": "path", "required": True, "schema": {"type": "string"}},
             ID, {"name": "_cascade", "in": "query", "required": False,
                  "schema": {"type": "string", "enum": ["delete"]}}])}
    return paths


def openapi_document(statement: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of a CapabilityStatement (``rest[0]``)."""
    rest = statement["rest"][0]
    paths: dict[str, dict[str, Any]] = {
        "/metadata": {"get": _operation("capabilities", "The CapabilityStatement", "system",
                                        _answers("200", RESOURCE))},
        "/": {"post": _operation("transaction", "A transaction or batch Bundle", "system",
                                 _answers("200", BUNDLE, "400", "409", "412", "422"),
                                 body=_body(BUNDLE))},
        "/_history": {"get": _operation("historySystem", "Every version", "system",
                                        _answers("200", BUNDLE, "400"))},
    }
    for resource in rest["resource"]:
        paths.update(_type_paths(resource))
    paths.update(_operation_paths(rest))
    software = statement.get("software", {})
    return {
        "openapi": "3.0.3",
        "info": {"title": "alliance-fhir-server FHIR R4 API",
                 "version": str(software.get("version", "")),
                 "description": "HL7 FHIR R4 (4.0.1) for regional medical alliances "
                                "(医联体 / 医共体). Bodies are FHIR JSON resources; every "
                                "error is an OperationOutcome."},
        "servers": [{"url": statement.get("implementation", {}).get("url", "/fhir")}],
        "tags": [{"name": "system"}, {"name": "operations"},
                 *({"name": r["type"]} for r in rest["resource"])],
        "paths": paths,
        "components": {
            "schemas": {
                "Resource": {"type": "object", "required": ["resourceType"],
                             "properties": {"resourceType": {"type": "string"},
                                            "id": {"type": "string"}},
                             "additionalProperties": True},
                "Bundle": {"type": "object", "required": ["resourceType", "type"],
                           "properties": {"resourceType": {"type": "string",
                                                           "enum": ["Bundle"]},
                                          "type": {"type": "string"},
                                          "total": {"type": "integer"},
                                          "entry": {"type": "array",
                                                    "items": {"type": "object"}}},
                           "additionalProperties": True},
                "OperationOutcome": {"type": "object", "required": ["resourceType", "issue"],
                                     "properties": {"resourceType": {"type": "string"},
                                                    "issue": {"type": "array",
                                                              "items": {"type": "object"}}},
                                     "additionalProperties": True}},
            "responses": {"Error": {"description": "an OperationOutcome saying what and where",
                                    "content": {FHIR_JSON: {"schema": {
                                        "$ref": "#/components/schemas/OperationOutcome"}}}}},
        },
    }
