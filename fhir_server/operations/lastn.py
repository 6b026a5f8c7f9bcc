"""Observation/$lastn (FHIR R4 Observation-lastn): the newest N Observations per code for one patient.

The clinician view's "latest labs" is this question. The filters (patient/subject, category, code,
date, and any other Observation search parameter) are an ordinary search sorted by `-date`, run page
by page through storage; this module groups the matches by code and keeps the first `max` of each.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import get_context
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.api.search import query_pairs
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.operations.everything import parameters_to_pairs
from fhir_server.operations.registry import Operation
from fhir_server.search.bundle import entry_bytes, link, searchset
from fhir_server.search.page import Hit
from fhir_server.search.query import parse_request
from fhir_server.storage.base import Storage

router = APIRouter()

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
OPERATION = Operation("lastn", DEFINITION, router, resource_type="Observation")

PAGE = 500  # rows fetched per storage page while grouping
_REFUSED = {"_sort", "_count", "_page_token", "_include", "_revinclude", "_summary", "_elements", "_total"}


def _group_key(content: bytes) -> str:
    """The code an Observation is grouped under: its first coding (system|code), else code.text."""
    code = orjson.loads(content).get("code") or {}
    for coding in code.get("coding") or []:
        if coding.get("code"):
            return f"{coding.get('system', '')}|{coding['code']}"
    return "text:" + str(code.get("text", ""))


def parse_params(params: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    """(max, the search filters) from the operation's parameters; 400 on a bad max or no patient."""
    max_n = 1
    filters: list[tuple[str, str]] = []
    for name, value in params:
        if name == "max":
            if not value.strip().isdigit() or int(value) < 1:
                raise FhirError.bad_request(
                    msg("$lastn max must be a positive integer, not {value!r}", value=value), expression="max"
                )
            max_n = int(value)
        elif name == "_format":
            continue
        elif name.split(":", 1)[0] in _REFUSED:
            raise FhirError.bad_request(
                msg("Parameter {name!r} is not supported by $lastn", name=name),
                code="not-supported",
                expression=name,
            )
        else:
            filters.append((name, value))
    if not any(n.split(":", 1)[0] in ("patient", "subject") for n, _ in filters):
        raise FhirError.bad_request(
            msg("$lastn needs a patient or subject parameter"), code="required", expression="patient"
        )
    return max_n, filters


def lastn(store: Storage, params: list[tuple[str, str]], base: str, max_count: int = 1000) -> list[Hit]:
    """The newest `max` Observations of each code matching the filters, codes in order of their newest."""
    max_n, filters = parse_params(params)
    groups: dict[str, list[Hit]] = {}
    token: str | None = None
    while True:
        page_params = [*filters, ("_sort", "-date"), ("_count", str(PAGE))]
        if token:
            page_params.append(("_page_token", token))
        req = parse_request(page_params, max(max_count, PAGE))
        if req.issues:
            raise FhirError.bad_request(req.issues[0], code="not-supported")
        page = store.search("Observation", req, base_url=base, strict=True, default_count=PAGE)
        for hit in page.rows:
            kept = groups.setdefault(_group_key(hit.content), [])
            if len(kept) < max_n:
                kept.append(hit)
        token = page.next_token
        if not token or not page.rows:
            break
    return [hit for kept in groups.values() for hit in kept]


def bundle_bytes(hits: list[Hit], base: str, params: list[tuple[str, str]]) -> bytes:
    """The searchset Bundle of the result (entries spliced from the stored bytes)."""
    links = [link(f"{base}/Observation/$lastn", params, "self")]
    entries = (entry_bytes(base, h.res_type, h.res_id, h.content, "match") for h in hits)
    return searchset(links, len(hits), entries)


def _run(request: Request, params: list[tuple[str, str]]) -> bytes:
    ctx = get_context(request)
    base = base_url(request)
    return bundle_bytes(lastn(ctx.store, params, base, ctx.settings.max_count), base, params)


@router.get("/Observation/$lastn")
async def lastn_get(request: Request) -> Response:
    """GET [base]/Observation/$lastn?patient=…&category=…&code=…&max=…&date=…"""
    check_accept(request)
    return fhir_json(await run_in_threadpool(_run, request, query_pairs(request)))


@router.get("/Patient/{patient_id}/Observation/$lastn")
async def lastn_compartment(request: Request, patient_id: str) -> Response:
    """GET [base]/Patient/[id]/Observation/$lastn: $lastn within one patient's compartment."""
    check_accept(request)
    params = [(k, v) for k, v in query_pairs(request) if k not in ("patient", "subject")]
    return fhir_json(await run_in_threadpool(_run, request, [("patient", patient_id), *params]))


@router.post("/Observation/$lastn")
async def lastn_post(request: Request) -> Response:
    """POST [base]/Observation/$lastn with a Parameters body (query-string parameters also apply)."""
    check_accept(request)
    params = query_pairs(request) + parameters_to_pairs(await json_body(request))
    return fhir_json(await run_in_threadpool(_run, request, params))
