"""The Patient compartment query behind `$everything`, in one SQL statement.

The compartment comes from the official CompartmentDefinition (`search/compartment.py`) and is
resolved through the `sp_reference` index: the given Patients, every resource whose compartment
parameter points at one of them (optionally limited to a care-date range via `sp_date`), and the
Organizations/Practitioners/Encounters/... those resources reference. Pages are keyset-ordered by
(kind, rid) — patients first, then the compartment, then supporting resources — never by OFFSET.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    union,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select, TextClause
from sqlalchemy.sql.elements import BindParameter

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.compartment import SUPPORT_TYPES, care_date_pairs, compartment_pairs
from fhir_server.search.derived import expand_pairs
from fhir_server.search.page import (
    KIND_COMPARTMENT,
    KIND_PATIENT,
    KIND_SUPPORT,
    CompartmentPage,
    CompartmentQuery,
    CompartmentRow,
)
from fhir_server.search.registry import get_registry
from fhir_server.storage.sql.index_tables import sp_date, sp_reference
from fhir_server.storage.sql.schema import resource
from fhir_server.storage.sql.templates import Template, sentinel_index, slot

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def _pairs_condition(table, pairs: tuple[tuple[str, str], ...]) -> TextClause:
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
    content: bool = True
    summary: bool = False
    members_of_types: bool = False


@cache
def _statement(shape: _Shape) -> Select:
    """The one SELECT producing (kind, rid, res_type, res_id, version, last_updated, total, content).

    Values are bind parameters; without `shape.content` the content column (and its join) is left out."""
    r = resource
    ref = sp_reference.alias("ref")
    ids: BindParameter = bindparam("ids", expanding=True)
    patients = select(r.c.rid.label("rid"), literal(KIND_PATIENT).label("kind")).where(
        r.c.res_type == "Patient", r.c.res_id.in_(ids), r.c.deleted == false()
    )
    comp_where: list[ColumnElement | TextClause] = [
        ref.c.target_type == "Patient",
        ref.c.target_id.in_(ids),
        _pairs_condition(ref, compartment_pairs()),
    ]
    if shape.members_of_types and shape.types:
        comp_where.append(ref.c.res_type.in_(bindparam("types", expanding=True)))
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
    if shape.summary:
        # One row instead of ~2,000: any write to a member changes a version (sum), a deletion the count,
        # a member joining or leaving the rids (sum), so equal summaries mean the same row versions.
        return (
            select(
                func.count(),
                func.coalesce(func.sum(r.c.rid), 0),
                func.coalesce(func.sum(r.c.version), 0),
                func.coalesce(func.max(r.c.last_updated), 0),
            )
            .select_from(agg.join(r, r.c.rid == agg.c.rid))
            .where(*conds)
        )
    ranked = (
        select(
            agg.c.kind,
            r.c.rid,
            r.c.res_type,
            r.c.res_id,
            r.c.version,
            r.c.last_updated,
            func.count().over().label("total"),
        )
        .select_from(agg.join(r, r.c.rid == agg.c.rid))
        .where(*conds)
        .subquery("ranked")
    )
    cols = [ranked.c.kind, ranked.c.rid, ranked.c.res_type, ranked.c.res_id, ranked.c.version]
    cols += [ranked.c.last_updated, ranked.c.total]
    if shape.content:
        body = resource.alias("body")
        stmt = select(*cols, body.c.content).select_from(ranked.join(body, body.c.rid == ranked.c.rid))
    else:
        stmt = select(*cols)
    if shape.after:
        kind: BindParameter = bindparam("after_kind")
        rid: BindParameter = bindparam("after_rid")
        stmt = stmt.where(or_(ranked.c.kind > kind, and_(ranked.c.kind == kind, ranked.c.rid > rid)))
    stmt = stmt.order_by(ranked.c.kind, ranked.c.rid)
    if shape.limit:
        stmt = stmt.limit(bindparam("limit"))
    return stmt


def _shape(q: CompartmentQuery) -> _Shape:
    """Which optional clauses this query needs."""
    return _Shape(
        q.start is not None,
        q.end is not None,
        q.types is not None,
        q.since is not None,
        q.after is not None,
        q.count is not None,
        q.content,
        q.summary,
        q.members_of_types,
    )


def statement_and_params(ids: list[str], q: CompartmentQuery) -> tuple[Select, dict]:
    """The (cached) statement for this query's shape and its bind values."""
    shape = _shape(q)
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
        assert q.after is not None
        params["after_kind"], params["after_rid"] = q.after
    if shape.limit:
        params["limit"] = (q.count or 0) + 1
    return _statement(shape), params


# Scalar parameters of the page statement, in the order their values follow the ids and _type values.
_SCALARS = ("start", "end", "since", "after_kind", "after_rid", "limit")


def _flat(params: dict) -> list:
    """A call's values in slot order: the ids, the _type values, then the scalars it has."""
    return [*params["ids"], *params.get("types", ()), *(params[k] for k in _SCALARS if k in params)]


@lru_cache(maxsize=256)
def _driver_statement(shape: _Shape, n_ids: int, n_types: int, dialect: Any) -> Template:
    """The page statement of one shape and list lengths as driver SQL, compiled once.

    Building and compiling this statement (and its cache key) costs about a millisecond per call; the
    driver SQL is the same text every time, so psycopg also prepares it on the server. Values are found
    in the compiled parameters by the search templates' sentinels."""
    present = {
        "start": shape.start,
        "end": shape.end,
        "since": shape.since,
        "after_kind": shape.after,
        "after_rid": shape.after,
        "limit": shape.limit,
    }
    values: list = []
    sample: dict[str, Any] = {"ids": [slot(values, "") for _ in range(n_ids)]}
    if shape.types:
        sample["types"] = [slot(values, "") for _ in range(n_types)]
    for key in _SCALARS:
        if present[key]:
            sample[key] = slot(values, 0)
    expanded = _statement(shape).compile(dialect=dialect).construct_expanded_state(sample)
    consts: dict[str, Any] = {}
    slots = []
    for name, value in expanded.parameters.items():
        i = sentinel_index(value, len(values))
        if i is None:
            consts[name] = value
        else:
            slots.append((name, i, ""))
    if sorted(i for _, i, _ in slots) != list(range(len(values))):  # a value the statement did not bind
        raise ValueError("compartment statement does not bind every value as given")
    return Template(expanded.statement, None, consts, tuple(slots), {})


def _page_rows(conn: Connection, ids: list[str], q: CompartmentQuery) -> list[tuple]:
    """The page's rows as tuples: on PostgreSQL by driver SQL with binary results (the stored bytes
    arrive as they are, not hex-encoded by the server and decoded here), elsewhere through SQLAlchemy."""
    stmt, params = statement_and_params(ids, q)
    if conn.dialect.name != "postgresql" or conn.dialect.paramstyle != "pyformat":
        return [tuple(row) for row in conn.execute(stmt, params)]
    driver = _driver_statement(_shape(q), len(ids), len(q.types or ()), conn.dialect)
    with conn.connection.dbapi_connection.cursor(binary=True) as cur:  # type: ignore[union-attr]
        cur.execute(driver.sql, driver.params(_flat(params)))
        return cur.fetchall()


def _check_patient(patient_id: str, deleted: bool | None) -> None:
    """404 for an unknown Patient, 410 for a deleted one (`deleted` None: no such row)."""
    if deleted is None:
        raise FhirError.not_found(msg("{ref} not found", ref=f"Patient/{patient_id}"))
    if deleted:
        raise FhirError.gone(msg("{ref} was deleted", ref=f"Patient/{patient_id}"))


def compartment(engine: Engine, ids: list[str], q: CompartmentQuery) -> CompartmentPage:
    """Run the compartment query for these Patient ids (the first one must exist and not be deleted)."""
    patient_id = ids[0]
    result = CompartmentPage(patient_ids=ids)
    r = resource.c
    with engine.connect() as conn:
        deleted = select(r.deleted).where(r.res_type == "Patient", r.res_id == patient_id)
        if q.summary:
            # The existence check rides along: the freshness key of a cached page is one round trip.
            stmt, params = statement_and_params(ids, q)
            count, rids, versions, updated, gone = conn.execute(
                stmt.add_columns(deleted.scalar_subquery()), params
            ).one()
            _check_patient(patient_id, gone)
            result.total = int(count)
            result.summary = (int(count), int(rids), int(versions), int(updated))
            return result
        found = conn.execute(deleted).first()
        _check_patient(patient_id, None if found is None else found.deleted)
        if q.count == 0:
            stmt, params = statement_and_params(
                ids, CompartmentQuery(q.start, q.end, q.types, q.since, None, None)
            )
            result.total = conn.execute(
                select(func.count()).select_from(stmt.subquery()), params
            ).scalar_one()
            return result
        rows = _page_rows(conn, ids, q)
    if q.count is not None and len(rows) > q.count:
        rows = rows[: q.count]
        result.next_after = (rows[-1][0], rows[-1][1])
    # Positional unpacking: named access on 2,000 rows is a measurable part of a clinician page.
    if q.content:
        result.rows = [
            CompartmentRow(kind, rid, res_type, res_id, content, version, last_updated)
            for kind, rid, res_type, res_id, version, last_updated, _total, content in rows
        ]
    else:
        result.rows = [
            CompartmentRow(kind, rid, res_type, res_id, b"", version, last_updated)
            for kind, rid, res_type, res_id, version, last_updated, _total in rows
        ]
    if rows:
        result.total = rows[0][6]
    return result
