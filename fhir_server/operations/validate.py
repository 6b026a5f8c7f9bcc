"""[type]/$validate (FHIR R4 Resource-validate): check a resource without storing it.

The same checks as a create or update (`fhir_server.validation.validate`: R4 required bindings, the R4B
model, R4 differences as data). The answer is always an OperationOutcome with 200: its issues say
whether the resource is valid (errors) or not (information only).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.api.body import json_body
from fhir_server.api.responses import check_accept, fhir_json
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.operations.registry import Operation
from fhir_server.validation import check_type, validate

router = APIRouter()

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
OPERATION = Operation("validate", DEFINITION, router)


def _resource_of(body: object) -> object:
    """The resource to check: the body itself, or a Parameters' `resource` parameter."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or []:
            if isinstance(p, dict) and p.get("name") == "resource":
                return p.get("resource")
        raise FhirError.bad_request("Parameters must carry the resource to validate in 'resource'")
    return body


def outcome_of(body: object, res_type: str) -> dict:
    """The validation OperationOutcome of one resource (errors when invalid)."""
    try:
        validate(body, res_type)
    except FhirError as exc:
        if exc.status != 400:
            raise
        return exc.outcome
    return operation_outcome("information", "informational", "Validation successful, no issues found")


@router.post("/{res_type}/$validate")
async def validate_type(request: Request, res_type: str) -> Response:
    """POST [base]/[type]/$validate with the resource (or a Parameters holding it)."""
    check_accept(request)
    check_type(res_type)
    return fhir_json(outcome_of(_resource_of(await json_body(request)), res_type))
