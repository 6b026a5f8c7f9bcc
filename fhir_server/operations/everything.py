"""Patient/$everything (FHIR R4 Patient-everything) over the patient's whole cross-hospital link set.

This module owns the operation's parameters, its Bundle and its routes; the compartment query itself
is storage's (`Storage.compartment`), and the link set comes from the identity service.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import get_context
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.api.search import query_pairs
from fhir_server.errors import FhirError
from fhir_server.identity.service import linked_patient_ids
from fhir_server.operations.registry import Operation
from fhir_server.search.bundle import entry_bytes, link, searchset
from fhir_server.search.page import KIND_SUPPORT, CompartmentPage, CompartmentQuery
from fhir_server.search.query import decode_token, encode_token
from fhir_server.search.values import date_range
from fhir_server.storage.base import Storage
from fhir_server.timeutil import parse_instant
from fhir_server.validation import r4_resource_types

router = APIRouter()

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
OPERATION = Operation("everything", DEFINITION, router, resource_type="Patient")

_PARAMS = {"start", "end", "_since", "_type", "_count", "_page_token", "_linked", "_format"}
Query = CompartmentQuery  # the operation's parameters are exactly the compartment query's


def everything(store: Storage, patient_id: str, q: CompartmentQuery | None = None) -> CompartmentPage:
    """Run $everything for one Patient (and, unless q.linked is False, every Patient linked to it)."""
    q = q or CompartmentQuery()
    ids = linked_patient_ids(store, patient_id) if q.linked else [patient_id]
    ids = [patient_id, *(i for i in ids if i != patient_id)]
    return store.compartment(ids, q)


# -- parameters ----------------------------------------------------------------------------------
def _date(name: str, value: str, upper: bool) -> int:
    rng = date_range(value)
    if rng is None:
        raise FhirError.bad_request(f"{name} must be a FHIR date or dateTime, not {value!r}", expression=name)
    return rng[1] if upper else rng[0]


def parse_query(params: list[tuple[str, str]], default_count: int, max_count: int) -> CompartmentQuery:
    """Build a Query from (name, value) pairs (query string, form or flattened Parameters); 400 on bad values."""
    q = CompartmentQuery(count=default_count)
    seen: set[str] = set()
    types: list[str] = []
    for name, value in params:
        if name not in _PARAMS:
            raise FhirError.bad_request(
                f"Unknown $everything parameter {name!r}", code="not-supported", expression=name
            )
        if name in seen and name != "_type":
            raise FhirError.bad_request(f"Parameter {name} given more than once", expression=name)
        seen.add(name)
        if name == "start":
            q.start = _date(name, value, upper=False)
        elif name == "end":
            q.end = _date(name, value, upper=True)
        elif name == "_since":
            try:
                q.since = parse_instant(value)
            except ValueError:
                raise FhirError.bad_request(f"_since must be a FHIR instant, not {value!r}", expression=name)
        elif name == "_type":
            types += [t.strip() for t in value.split(",") if t.strip()]
        elif name == "_count":
            if not value.strip().isdigit():
                raise FhirError.bad_request(
                    f"_count must be a non-negative integer, not {value!r}", expression=name
                )
            q.count = min(int(value), max_count)
        elif name == "_page_token":
            values, rid, _direction = decode_token(value)
            if len(values) != 1 or not isinstance(values[0], int):
                raise FhirError.bad_request("invalid _page_token", expression=name)
            q.after = (values[0], rid)
        elif name == "_linked":
            if value not in ("true", "false"):
                raise FhirError.bad_request("_linked must be true or false", expression=name)
            q.linked = value == "true"
    if "_type" in seen:
        unknown = [t for t in types if t not in r4_resource_types()]
        if unknown or not types:
            raise FhirError.bad_request(
                f"Unknown resource type(s) in _type: {', '.join(unknown) or '(empty)'}", expression="_type"
            )
        q.types = tuple(sorted(set(types)))
    if q.start is not None and q.end is not None and q.start > q.end:
        raise FhirError.bad_request("start is after end", expression="start")
    return q


_VALUE_KEYS = (
    "valueDate",
    "valueDateTime",
    "valueInstant",
    "valueCode",
    "valueString",
    "valueInteger",
    "valueUnsignedInt",
    "valuePositiveInt",
    "valueBoolean",
    "valueReference",
    "valueId",
)


def parameters_to_pairs(body: object) -> list[tuple[str, str]]:
    """Flatten a Parameters resource into (name, value) text pairs (patient references included)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError.bad_request("Body must be a Parameters resource")
    out: list[tuple[str, str]] = []
    for p in body.get("parameter") or []:
        name = p.get("name") if isinstance(p, dict) else None
        value = next((p[k] for k in _VALUE_KEYS if k in p), None) if name else None
        if name is None or value is None:
            raise FhirError.bad_request(
                "Every parameter needs a name and a primitive value",
                code="structure",
                expression="Parameters.parameter",
            )
        if isinstance(value, dict):
            value = value.get("reference", "")
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out.append((name, str(value)))
    return out


# -- Bundle --------------------------------------------------------------------------------------
def bundle_bytes(result: CompartmentPage, base: str, patient_id: str, params: list[tuple[str, str]]) -> bytes:
    """The searchset Bundle (entries spliced from stored bytes) with self and next links."""
    kept = [(k, v) for k, v in params if k not in ("_page_token", "_format")]
    path = f"{base}/Patient/{patient_id}/$everything"
    links = [link(path, params, "self")]
    if result.next_after is not None:
        token = encode_token([result.next_after[0]], result.next_after[1], "n")
        links.append(link(path, kept + [("_page_token", token)], "next"))
    entries = (
        entry_bytes(
            base, row.res_type, row.res_id, row.content, "include" if row.kind == KIND_SUPPORT else "match"
        )
        for row in result.rows
    )
    return searchset(links, result.total, entries)


# -- HTTP ----------------------------------------------------------------------------------------
def _run(request: Request, patient_id: str, params: list[tuple[str, str]]) -> bytes:
    ctx = get_context(request)
    q = parse_query(params, ctx.settings.default_count, ctx.settings.max_count)
    result = everything(ctx.store, patient_id, q)
    return bundle_bytes(result, base_url(request), patient_id, params)


def _patient_param(params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """Split the type-level `patient` parameter (one Patient reference or id) from the others."""
    refs = [v for k, v in params if k == "patient"]
    rest = [(k, v) for k, v in params if k != "patient"]
    if len(refs) != 1 or not refs[0].strip():
        raise FhirError.bad_request(
            "Patient/$everything at type level needs exactly one 'patient' parameter (Patient/<id>); "
            "use Patient/<id>/$everything, or $export for many patients",
            code="required",
            expression="patient",
        )
    ref = refs[0].strip().rstrip("/")
    return ref.rsplit("/", 1)[-1], rest


@router.get("/Patient/{patient_id}/$everything")
async def everything_get(request: Request, patient_id: str) -> Response:
    """GET [base]/Patient/[id]/$everything."""
    check_accept(request)
    return fhir_json(await run_in_threadpool(_run, request, patient_id, query_pairs(request)))


@router.post("/Patient/{patient_id}/$everything")
async def everything_post(request: Request, patient_id: str) -> Response:
    """POST [base]/Patient/[id]/$everything with a Parameters body (query-string parameters also apply)."""
    check_accept(request)
    params = query_pairs(request) + parameters_to_pairs(await json_body(request))
    return fhir_json(await run_in_threadpool(_run, request, patient_id, params))


@router.get("/Patient/$everything")
async def everything_type_get(request: Request) -> Response:
    """GET [base]/Patient/$everything?patient=Patient/[id] (one patient; use $export for populations)."""
    check_accept(request)
    patient_id, params = _patient_param(query_pairs(request))
    return fhir_json(await run_in_threadpool(_run, request, patient_id, params))


@router.post("/Patient/$everything")
async def everything_type_post(request: Request) -> Response:
    """POST [base]/Patient/$everything with Parameters.patient (a Patient reference)."""
    check_accept(request)
    patient_id, params = _patient_param(query_pairs(request) + parameters_to_pairs(await json_body(request)))
    return fhir_json(await run_in_threadpool(_run, request, patient_id, params))
