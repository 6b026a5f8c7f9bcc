"""HTTP endpoints of the identity review queue and link sets (Lienthong's own API, not FHIR).

Mounted under the FHIR base path, so the queue lives at <base>/identity/... ; database work runs in
the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import Store
from fhir_server.api.responses import fhir_json
from fhir_server.errors import FhirError
from fhir_server.identity import service

router = APIRouter()
# BIGINT columns: out-of-range values are a 400, not a driver overflow (issue 12).
ReviewId = Annotated[int, Path(ge=0, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.get("/identity/review")
async def review_list(store: Store, status: str = "pending", limit: Limit = 100) -> Response:
    """Review-queue items (pending by default), oldest first."""
    if status not in ("pending", "accepted", "rejected"):
        raise FhirError.bad_request("status must be pending, accepted or rejected")
    items = await run_in_threadpool(service.review_list, store, status, min(limit, 1000))
    return fhir_json({"items": items})


async def _decide(request: Request, store, review_id: int, accept: bool) -> Response:
    by = request.headers.get("x-reviewer")
    fn = service.review_accept if accept else service.review_reject
    try:
        item = await run_in_threadpool(fn, store, review_id, by)
    except KeyError as exc:
        raise FhirError.not_found(str(exc.args[0])) from None
    except ValueError as exc:
        raise FhirError.conflict(str(exc)) from None
    return fhir_json(item)


@router.post("/identity/review/{review_id}/accept")
async def review_accept(request: Request, store: Store, review_id: ReviewId) -> Response:
    """Accept a queued pair: link the two Patients (method manual)."""
    return await _decide(request, store, review_id, True)


@router.post("/identity/review/{review_id}/reject")
async def review_reject(request: Request, store: Store, review_id: ReviewId) -> Response:
    """Reject a queued pair: never link them automatically."""
    return await _decide(request, store, review_id, False)


@router.get("/identity/links/{patient_id}")
async def links(store: Store, patient_id: str) -> Response:
    """The link set of one Patient: Person id and every linked Patient id."""
    person = await run_in_threadpool(service.person_of, store, patient_id)
    ids = await run_in_threadpool(service.linked_patient_ids, store, patient_id)
    return fhir_json({"patient": patient_id, "person": person, "linked": ids})


@router.post("/identity/link/{patient_id}")
async def link(store: Store, patient_id: str) -> Response:
    """(Re)link one Patient now."""
    return fhir_json(await run_in_threadpool(service.link_patient, store, patient_id))


@router.post("/identity/unlink/{patient_id}")
async def unlink(request: Request, store: Store, patient_id: str) -> Response:
    """Take a Patient out of its link set (and do not link it back automatically)."""
    by = request.headers.get("x-reviewer")
    return fhir_json(await run_in_threadpool(service.undo_link, store, patient_id, by))
