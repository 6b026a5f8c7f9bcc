"""Patient/$match (FHIR R4 Patient-match): candidate records of one person across hospitals."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import Store
from fhir_server.api.responses import base_url, fhir_json
from fhir_server.errors import FhirError
from fhir_server.identity.match import match_patient
from fhir_server.operations.registry import Operation

router = APIRouter()

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
OPERATION = Operation("match", "http://hl7.org/fhir/OperationDefinition/Patient-match", router, "Patient")


def _match_input(body: object) -> tuple[dict, bool, int | None]:
    """(Patient, onlyCertainMatches, count) from a Parameters resource (a bare Patient is accepted too)."""
    if not isinstance(body, dict):
        raise FhirError.bad_request("Body must be a Parameters resource")
    if body.get("resourceType") == "Patient":
        return body, False, None
    if body.get("resourceType") != "Parameters":
        raise FhirError.bad_request("Body must be a Parameters resource with a 'resource' parameter")
    patient, only_certain, count = None, False, None
    for p in body.get("parameter") or []:
        name = p.get("name")
        if name == "resource":
            patient = p.get("resource")
        elif name == "onlyCertainMatches":
            only_certain = bool(p.get("valueBoolean"))
        elif name == "count":
            count = p.get("valueInteger")
            if not isinstance(count, int) or count < 1:
                raise FhirError.bad_request(
                    "count must be a positive integer", expression="Parameters.parameter"
                )
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirError.bad_request("Parameter 'resource' must hold a Patient", code="required")
    return patient, only_certain, count


@router.post("/Patient/$match")
async def patient_match(request: Request, store: Store) -> Response:
    """FHIR Patient/$match: searchset Bundle of candidate Patients with score and match-grade."""
    patient, only_certain, count = _match_input(await json_body(request))
    results = await run_in_threadpool(match_patient, store, patient, only_certain, count)
    base = base_url(request)
    entries = []
    for r in results:
        entries.append(
            {
                "fullUrl": f"{base}/Patient/{r.patient_id}",
                "resource": r.resource,
                "search": {
                    "mode": "match",
                    "score": r.probability,
                    "extension": [{"url": MATCH_GRADE, "valueCode": r.grade}],
                },
            }
        )
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return fhir_json(bundle)
