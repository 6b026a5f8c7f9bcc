"""Patient/$everything (FHIR R4 Patient-everything) over the patient's whole cross-hospital link set.

The Patient compartment comes from the official CompartmentDefinition and is resolved through the
`sp_reference` index in one SQL statement: the linked Patients, every resource whose compartment
parameter points at one of them (optionally limited to a care-date range via `sp_date`), and the
Organizations/Practitioners/Encounters/... those resources reference. Pages are keyset-ordered by
(kind, rid) — patients first, then the compartment, then supporting resources — never by OFFSET.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import and_, bindparam, exists, false, func, literal, or_, select, text, union, union_all
from sqlalchemy.sql import ColumnElement
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.api.search import query_pairs
from fhir_server.errors import FhirError
from fhir_server.operations.compartment import SUPPORT_TYPES, care_date_pairs, compartment_pairs
from fhir_server.search.derived import expand_pairs
from fhir_server.search.query import decode_token, encode_token
from fhir_server.search.registry import get_registry
from fhir_server.search.tables import sp_date, sp_reference
from fhir_server.search.values import date_range
from fhir_server.storage.schema import resource
from fhir_server.timeutil import instant, now_us, parse_instant
from fhir_server.validation import r4_resource_types

router = APIRouter()

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
# For the CapabilityStatement (the app appends every mounted module's OPERATIONS).
OPERATIONS = [{"name": "everything", "definition": DEFINITION, "type": "Patient"}]

KIND_PATIENT, KIND_COMPARTMENT, KIND_SUPPORT = 0, 1, 2
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_PARAMS = {"start", "end", "_since", "_type", "_count", "_page_token", "_linked", "_format"}


@dataclass
class Query:
    """Parsed $everything parameters (all optional)."""

    start: int | None = None  # µs, lower bound of the care-date range
    end: int | None = None  # µs, upper bound (inclusive)
    types: tuple[str, ...] | None = None
    since: int | None = None  # µs, lastUpdated lower bound (not applied to the Patients themselves)
    count: int | None = None  # page size; None = everything in one go (Python callers)
    after: tuple[int, int] | None = None  # (kind, rid) of the last row of the previous page
    linked: bool = True  # False: only this hospital's Patient record, not the link set


@dataclass(slots=True)
class Row:
    """One resource of the result, with its stored JSON bytes."""

    kind: int
    rid: int
    res_type: str
    res_id: str
    content: bytes

    def as_dict(self) -> dict:
        """Parse the stored JSON."""
        return orjson.loads(self.content)


@dataclass
class Result:
    """One page of $everything."""

    patient_ids: list[str]
    rows: list[Row] = field(default_factory=list)
    total: int = 0
    next_after: tuple[int, int] | None = None


# -- link set ------------------------------------------------------------------------------------
def linked_ids(store, patient_id: str) -> list[str]:
    """All Patient ids of the person (every hospital), from the identity service when it is installed."""
    try:
        from fhir_server.identity.service import linked_patient_ids
    except ModuleNotFoundError as exc:
        # Only a missing identity component means "no links"; a broken one must fail loudly.
        if exc.name in ("fhir_server.identity", "fhir_server.identity.service"):
            return [patient_id]
        raise
    return linked_patient_ids(store, patient_id)


# -- SQL -----------------------------------------------------------------------------------------
def _pairs_condition(table, pairs: tuple[tuple[str, str], ...]) -> ColumnElement:
    """(res_type, param) IN pairs, grouped by parameter so the planner sees few OR branches.

    Derived parameters (Condition `patient` = `subject` rows pointing at a Patient) are expanded to
    the rows that hold them. The pairs are constants from our own data files, rendered inline: ~150
    bind parameters per call cost more than the query's index probes."""
    by_param: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for res_type, param, target_type in expand_pairs(get_registry(), pairs):
        if not (_NAME.match(res_type) and _NAME.match(param) and _NAME.match(target_type or "X")):
            raise ValueError(f"unexpected compartment entry {res_type}.{param}")
        by_param[(param, target_type)].append(res_type)
    alias = table.name
    typed_table = "target_type" in table.c
    branches = []
    for (p, target_type), ts in sorted(by_param.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        typed = f" AND {alias}.target_type = '{target_type}'" if target_type and typed_table else ""
        branches.append(
            f"({alias}.param = '{p}'{typed} AND {alias}.res_type IN ({', '.join(repr(t) for t in sorted(ts))}))"
        )
    return text("(" + " OR ".join(branches) + ")")


@dataclass(frozen=True)
class _Shape:
    """Which optional clauses a statement has; statements are built once per shape."""

    start: bool
    end: bool
    types: bool
    since: bool
    after: bool
    limit: bool


@cache
def _statement(shape: _Shape):
    """The one SELECT producing (kind, rid, res_type, res_id, content, total); values are bind parameters."""
    r = resource
    ref = sp_reference.alias("ref")
    ids = bindparam("ids", expanding=True)
    patients = select(r.c.rid.label("rid"), literal(KIND_PATIENT).label("kind")).where(
        r.c.res_type == "Patient", r.c.res_id.in_(ids), r.c.deleted == false()
    )
    comp_where = (
        ref.c.target_type == "Patient",
        ref.c.target_id.in_(ids),
        _pairs_condition(ref, compartment_pairs()),
    )
    if not (shape.start or shape.end):
        compartment = select(ref.c.rid.label("rid"), literal(KIND_COMPARTMENT).label("kind")).where(
            *comp_where
        )
    else:
        comp = union(select(ref.c.rid.label("rid")).where(*comp_where)).subquery("comp_all")
        d = sp_date.alias("d")
        dated = _pairs_condition(d, care_date_pairs())
        overlap = [d.c.hi >= bindparam("start")] if shape.start else []
        overlap += [d.c.lo <= bindparam("end")] if shape.end else []
        # Resources without any care date stay in: a diagnosis with no date is still the patient's.
        keep = or_(
            ~exists().where(d.c.rid == comp.c.rid, dated),
            exists().where(d.c.rid == comp.c.rid, dated, *overlap),
        )
        compartment = select(comp.c.rid, literal(KIND_COMPARTMENT).label("kind")).where(keep)
    base = union_all(patients, compartment).cte("base")
    # Distinct targets first: hundreds of rows point at the same few Practitioners and Organizations.
    ref2 = sp_reference.alias("ref2")
    targets = (
        select(ref2.c.target_type, ref2.c.target_id)
        .where(ref2.c.rid.in_(select(base.c.rid)), ref2.c.target_type.in_(SUPPORT_TYPES))
        .distinct()
        .subquery("targets")
    )
    target = resource.alias("target")
    support = select(target.c.rid.label("rid"), literal(KIND_SUPPORT).label("kind")).select_from(
        targets.join(
            target, and_(target.c.res_type == targets.c.target_type, target.c.res_id == targets.c.target_id)
        )
    )
    every = union_all(select(base.c.rid, base.c.kind), support).subquery("every")
    agg = select(every.c.rid, func.min(every.c.kind).label("kind")).group_by(every.c.rid).subquery("agg")
    conds: list[ColumnElement] = [r.c.deleted == false()]
    if shape.types:
        conds.append(r.c.res_type.in_(bindparam("types", expanding=True)))
    if shape.since:
        conds.append(or_(agg.c.kind == KIND_PATIENT, r.c.last_updated >= bindparam("since")))
    ranked = (
        select(agg.c.kind, r.c.rid, r.c.res_type, r.c.res_id, func.count().over().label("total"))
        .select_from(agg.join(r, r.c.rid == agg.c.rid))
        .where(*conds)
        .subquery("ranked")
    )
    body = resource.alias("body")
    stmt = select(
        ranked.c.kind, ranked.c.rid, ranked.c.res_type, ranked.c.res_id, body.c.content, ranked.c.total
    ).select_from(ranked.join(body, body.c.rid == ranked.c.rid))
    if shape.after:
        kind, rid = bindparam("after_kind"), bindparam("after_rid")
        stmt = stmt.where(or_(ranked.c.kind > kind, and_(ranked.c.kind == kind, ranked.c.rid > rid)))
    stmt = stmt.order_by(ranked.c.kind, ranked.c.rid)
    if shape.limit:
        stmt = stmt.limit(bindparam("limit"))
    return stmt


def statement_and_params(ids: list[str], q: Query) -> tuple[object, dict]:
    """The (cached) statement for this query's shape and its bind values."""
    shape = _Shape(
        q.start is not None,
        q.end is not None,
        q.types is not None,
        q.since is not None,
        q.after is not None,
        q.count is not None,
    )
    params: dict = {"ids": ids}
    if shape.start:
        params["start"] = q.start
    if shape.end:
        params["end"] = q.end
    if shape.types:
        params["types"] = list(q.types or ())
    if shape.since:
        params["since"] = q.since
    if shape.after:
        params["after_kind"], params["after_rid"] = q.after
    if shape.limit:
        params["limit"] = (q.count or 0) + 1
    return _statement(shape), params


def everything(store, patient_id: str, q: Query | None = None) -> Result:
    """Run $everything for one Patient (and, unless q.linked is False, every Patient linked to it)."""
    q = q or Query()
    ids = linked_ids(store, patient_id) if q.linked else [patient_id]
    if patient_id not in ids:
        ids = [patient_id, *ids]
    result = Result(patient_ids=ids)
    r = resource.c
    with store.engine.connect() as conn:
        found = conn.execute(select(r.deleted).where(r.res_type == "Patient", r.res_id == patient_id)).first()
        if found is None:
            raise FhirError.not_found(f"Patient/{patient_id} not found")
        if found.deleted:
            raise FhirError.gone(f"Patient/{patient_id} was deleted")
        if q.count == 0:
            stmt, params = statement_and_params(ids, Query(q.start, q.end, q.types, q.since, None, None))
            result.total = conn.execute(
                select(func.count()).select_from(stmt.subquery()), params
            ).scalar_one()
            return result
        stmt, params = statement_and_params(ids, q)
        rows = conn.execute(stmt, params).all()
    if q.count is not None and len(rows) > q.count:
        rows = rows[: q.count]
        result.next_after = (rows[-1].kind, rows[-1].rid)
    result.rows = [Row(x.kind, x.rid, x.res_type, x.res_id, x.content) for x in rows]
    if rows:
        result.total = rows[0].total
    return result


# -- parameters ----------------------------------------------------------------------------------
def _date(name: str, value: str, upper: bool) -> int:
    rng = date_range(value)
    if rng is None:
        raise FhirError.bad_request(f"{name} must be a FHIR date or dateTime, not {value!r}", expression=name)
    return rng[1] if upper else rng[0]


def parse_query(params: list[tuple[str, str]], default_count: int, max_count: int) -> Query:
    """Build a Query from (name, value) pairs (query string, form or flattened Parameters); 400 on bad values."""
    q = Query(count=default_count)
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
def bundle_bytes(result: Result, base: str, patient_id: str, params: list[tuple[str, str]]) -> bytes:
    """The searchset Bundle (entries spliced from stored bytes) with self and next links."""
    kept = [(k, v) for k, v in params if k not in ("_page_token", "_format")]
    path = f"{base}/Patient/{patient_id}/$everything"
    links = [{"relation": "self", "url": f"{path}?{urlencode(params)}" if params else path}]
    if result.next_after is not None:
        token = encode_token([result.next_after[0]], result.next_after[1], "n")
        links.append({"relation": "next", "url": f"{path}?{urlencode(kept + [('_page_token', token)])}"})
    entries = [
        {
            "fullUrl": f"{base}/{row.res_type}/{row.res_id}",
            "resource": orjson.Fragment(row.content),
            "search": {"mode": "include" if row.kind == KIND_SUPPORT else "match"},
        }
        for row in result.rows
    ]
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(now_us())},
        "type": "searchset",
        "total": result.total,
        "link": links,
        "entry": entries,
    }
    if not entries:
        del bundle["entry"]
    return orjson.dumps(bundle)


# -- HTTP ----------------------------------------------------------------------------------------
def _run(request: Request, patient_id: str, params: list[tuple[str, str]]) -> bytes:
    settings = request.app.state.settings
    q = parse_query(params, settings.default_count, settings.max_count)
    result = everything(request.app.state.store, patient_id, q)
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
