"""HTTP endpoints: `Patient/$match` (FHIR R4 operation) and the identity review queue.

Mounted by the app under the FHIR base path, so the queue lives at <base>/identity/... .
The store comes from `request.app.state.store`; database work runs in the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.responses import base_url, fhir_json
from fhir_server.errors import FhirError
from fhir_server.identity import service
from fhir_server.identity.match import match_patient

router = APIRouter()

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
# For the CapabilityStatement: the app may append these to app.state.operations.
OPERATIONS = [
    {
        "name": "match",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
        "type": "Patient",
    }
]


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
async def patient_match(request: Request) -> Response:
    """FHIR Patient/$match: searchset Bundle of candidate Patients with score and match-grade."""
    patient, only_certain, count = _match_input(await json_body(request))
    results = await run_in_threadpool(match_patient, request.app.state.store, patient, only_certain, count)
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


@router.get("/identity/review")
async def review_list(request: Request, status: str = "pending", limit: int = 100) -> Response:
    """Review-queue items (pending by default), oldest first."""
    if status not in ("pending", "accepted", "rejected"):
        raise FhirError.bad_request("status must be pending, accepted or rejected")
    items = await run_in_threadpool(service.review_list, request.app.state.store, status, min(limit, 1000))
    return fhir_json({"items": items})


async def _decide(request: Request, review_id: int, accept: bool) -> Response:
    by = request.headers.get("x-reviewer")
    fn = service.review_accept if accept else service.review_reject
    try:
        item = await run_in_threadpool(fn, request.app.state.store, review_id, by)
    except KeyError as exc:
        raise FhirError.not_found(str(exc.args[0])) from None
    except ValueError as exc:
        raise FhirError.conflict(str(exc)) from None
    return fhir_json(item)


@router.post("/identity/review/{review_id}/accept")
async def review_accept(request: Request, review_id: int) -> Response:
    """Accept a queued pair: link the two Patients (method manual)."""
    return await _decide(request, review_id, True)


@router.post("/identity/review/{review_id}/reject")
async def review_reject(request: Request, review_id: int) -> Response:
    """Reject a queued pair: never link them automatically."""
    return await _decide(request, review_id, False)


@router.get("/identity/links/{patient_id}")
async def links(request: Request, patient_id: str) -> Response:
    """The link set of one Patient: Person id and every linked Patient id."""
    store = request.app.state.store
    person = await run_in_threadpool(service.person_of, store, patient_id)
    ids = await run_in_threadpool(service.linked_patient_ids, store, patient_id)
    return fhir_json({"patient": patient_id, "person": person, "linked": ids})


@router.post("/identity/link/{patient_id}")
async def link(request: Request, patient_id: str) -> Response:
    """(Re)link one Patient now."""
    return fhir_json(await run_in_threadpool(service.link_patient, request.app.state.store, patient_id))


@router.post("/identity/unlink/{patient_id}")
async def unlink(request: Request, patient_id: str) -> Response:
    """Take a Patient out of its link set (and do not link it back automatically)."""
    by = request.headers.get("x-reviewer")
    return fhir_json(await run_in_threadpool(service.undo_link, request.app.state.store, patient_id, by))
