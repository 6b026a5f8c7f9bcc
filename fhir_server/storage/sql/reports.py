"""The visit facts table (one row per Encounter) and the SQL of summaries over it.

Rows are written by the reports hook INSIDE the transaction that wrote the Encounter, its diagnosis, its
Patient or its Organization (fhir_server/reports/hook.py computes them), so a fact is never older than the
resources it comes from. Every period is a precomputed column: a province-month summary is one GROUP BY over
two indexed text columns, the same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cache

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Engine,
    Index,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fhir_server.storage.sql.db import SqlUnit, among
from fhir_server.storage.sql.identity import identity_link
from fhir_server.storage.sql.schema import metadata, resource
from fhir_server.storage.sql.tx import Tx

T = String(64)
report_visit = Table(
    "report_visit",
    metadata,
    Column("encounter_id", String(64), primary_key=True),
    Column("patient_id", T),
    Column("facility", T),
    Column("province_old", String(8)),
    Column("province_new", String(8)),
    Column("day", String(10)),
    Column("week", String(8)),
    Column("month", String(7)),
    Column("quarter", String(7)),
    Column("year", String(4)),
    Column("visit_class", String(16), nullable=False),
    Column("admitted", Integer, nullable=False),
    Column("discharged", Integer, nullable=False),
    Column("outcome", T),
    Column("los_days", Integer),
    Column("referral_in", Integer, nullable=False),
    Column("referral_out", Integer, nullable=False),
    Column("destination", T),
    Column("icd_code", String(16)),
    Column("icd_block", String(8)),
    Column("icd_chapter", String(8)),
    Column("age_band", String(8)),
    Column("sex", String(16)),
    Column("bhyt", Integer, nullable=False),
    Column("notifiable", T),
)
Index("ix_report_visit_patient", report_visit.c.patient_id)
Index("ix_report_visit_month", report_visit.c.month, report_visit.c.province_new)
Index("ix_report_visit_day", report_visit.c.day)

# The province-month rollup: visit counts per (month, old province, new province, class), kept by replace()
# with +/- deltas in the same transaction as the facts (a corrected or deleted visit moves out of its old
# cell). NULL keys are stored as '' (a primary key cannot hold NULL) and read back as NULL.
ROLLUP_KEYS = ("month", "province_old", "province_new", "visit_class")
ROLLUP_SUMS = (
    "visits",
    "admissions",
    "discharges",
    "bed_days",
    "los_count",
    "referrals_in",
    "referrals_out",
    "notifiable_cases",
)
report_visit_month = Table(
    "report_visit_month",
    metadata,
    *(Column(k, String(16), primary_key=True) for k in ROLLUP_KEYS),
    *(Column(m, Integer, nullable=False) for m in ROLLUP_SUMS),
)


def _contribution(row) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(rollup key, sums) of one fact row."""
    key = tuple(row[k] or "" for k in ROLLUP_KEYS)
    los = row["los_days"]
    sums = (
        1,
        int(row["admitted"] or 0),
        int(row["discharged"] or 0),
        int(los or 0),
        0 if los is None else 1,
        int(row["referral_in"] or 0),
        int(row["referral_out"] or 0),
        0 if row["notifiable"] is None else 1,
    )
    return key, sums


# one row per re-exam Appointment (fhir_server/reports/reexam.py); facility, origin_day and kept_by are
# filled by match_reexams from the visit facts, the rest from the Appointment and its Patient
report_reexam = Table(
    "report_reexam",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("patient_id", T, nullable=False),
    Column("origin_encounter", String(64)),
    Column("facility", T),
    Column("origin_day", String(10)),
    Column("province_old", String(8)),
    Column("province_new", String(8)),
    Column("day", String(10)),
    Column("week", String(8)),
    Column("month", String(7)),
    Column("quarter", String(7)),
    Column("year", String(4)),
    Column("window_start", String(10), nullable=False),
    Column("window_end", String(10), nullable=False),
    Column("age_band", String(8)),
    Column("sex", String(16)),
    Column("bhyt", Integer, nullable=False),
    Column("kept_by", String(64)),  # the Encounter that kept it
)
Index("ix_report_reexam_patient", report_reexam.c.patient_id)
Index("ix_report_reexam_month", report_reexam.c.month, report_reexam.c.province_new)


def _measures() -> dict:
    """Measure name -> SQL aggregate."""
    c = report_visit.c
    return {
        "visits": func.count(),
        "admissions": func.sum(c.admitted),
        "discharges": func.sum(c.discharged),
        "bed_days": func.sum(c.los_days),
        "los_count": func.count(c.los_days),
        "referrals_in": func.sum(c.referral_in),
        "referrals_out": func.sum(c.referral_out),
        "notifiable_cases": func.sum(case((c.notifiable.is_not(None), 1), else_=0)),
    }


MEASURES = tuple(_measures())


def _reexam_measures(today: str) -> dict:
    """Measure name -> SQL aggregate over the re-exam rows (missed = window closed before `today`)."""
    c = report_reexam.c
    open_ = c.kept_by.is_(None)
    return {
        "reexams": func.count(),
        "reexam_kept": func.sum(case((c.kept_by.is_not(None), 1), else_=0)),
        "reexam_missed": func.sum(case((and_(open_, c.window_end < today), 1), else_=0)),
        "reexam_pending": func.sum(case((and_(open_, c.window_end >= today), 1), else_=0)),
    }


REEXAM_MEASURES = tuple(_reexam_measures(""))


def _whole_months(start: str | None, end: str | None) -> bool:
    """True when the period starts on a 1st and ends on a month's last day (or is open at that end)."""
    if start and not start.endswith("-01"):
        return False
    if end:
        try:
            day = dt.date.fromisoformat(end)
        except ValueError:
            return False
        if (day + dt.timedelta(days=1)).day != 1:
            return False
    return bool(start or end)


@cache
def _upsert_statement(dialect: str, which: str, updates: tuple[str, ...] = ()):
    """The facts ("visit"), re-exam ("reexam") or rollup delta ("rollup") upsert, built once per process.

    Building them per flush cost more Python than running them: `excluded` is a fresh alias with a
    proxy for every column of the table each time. `updates`: the columns a conflict overwrites (default:
    every column but the key); re-exam rows leave the columns match_reexams computes to it."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    if which == "rollup":
        ins = insert(report_visit_month)
        t = report_visit_month.c
        return ins.on_conflict_do_update(
            index_elements=[t[k] for k in ROLLUP_KEYS],
            set_={m: t[m] + ins.excluded[m] for m in ROLLUP_SUMS},
        )
    table, key = (report_visit, "encounter_id") if which == "visit" else (report_reexam, "appointment_id")
    ins = insert(table)
    names = updates or tuple(col.name for col in table.c if col.name != key)
    return ins.on_conflict_do_update(index_elements=[table.c[key]], set_={n: ins.excluded[n] for n in names})


# A function scan over the array yields its elements in order, so the locks follow the sorted keys.
_LOCK_ALL = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k"
)


def _ids_param(dialect: str, column) -> ColumnElement:
    """`column` among the list bound as `ids` (an array on PostgreSQL, an expanding IN on SQLite)."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(String())))
    return column.in_(bindparam("ids", expanding=True))


@cache
def _match_statements(dialect: str, any_facility: bool) -> tuple:
    """The two UPDATEs of match_reexams, built once per process (two aliases and subqueries per flush
    cost more Python than PostgreSQL took to run them)."""
    x, v = report_reexam.c, report_visit.alias("v").c
    origin = report_visit.alias("o").c
    origin_stmt = (
        report_reexam.update()
        .where(_ids_param(dialect, x.patient_id))
        .values(
            facility=select(origin.facility)
            .where(origin.encounter_id == x.origin_encounter)
            .scalar_subquery(),
            origin_day=select(origin.day).where(origin.encounter_id == x.origin_encounter).scalar_subquery(),
        )
    )
    same = v.patient_id == x.patient_id
    if any_facility:
        a, b = identity_link.alias("la").c, identity_link.alias("lb").c
        linked = select(b.patient_id).where(
            a.patient_id == x.patient_id,
            a.status == "active",
            b.person_id == a.person_id,
            b.status == "active",
        )
        same = same | v.patient_id.in_(linked)
    conds = [
        same,
        v.day >= x.window_start,
        v.day <= x.window_end,
        # the visit that gave the appointment (and any before it) never keeps it
        v.day > func.coalesce(x.origin_day, ""),
        v.encounter_id != func.coalesce(x.origin_encounter, ""),
    ]
    if not any_facility:
        conds.append((x.facility.is_(None)) | (v.facility == x.facility))
    kept_stmt = (
        report_reexam.update()
        .where(_ids_param(dialect, x.patient_id))
        .values(kept_by=select(func.min(v.encounter_id)).where(and_(*conds)).scalar_subquery())
    )
    return origin_stmt, kept_stmt


def _column_among(unit: SqlUnit, out: ColumnElement, key: ColumnElement, values: list[str]) -> list:
    """`out` of every row whose `key` is one of `values` (no query when there are none)."""
    if not values:
        return []
    return [row[0] for row in unit.conn.execute(select(out).where(among(unit.conn, key, values)))]


class ReportRepository:
    """The facts table of one database: reads the resources facts come from, writes facts, aggregates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- inside a writing transaction ----------------------------------------------------------
    def lock(self, unit: SqlUnit, encounter_ids: list[str]) -> None:
        """Serialize refreshes of the same visits until commit (PostgreSQL; SQLite writers are serial).

        Taken BEFORE the sources are read: a transaction that wrote only the Patient must not compute a
        fact from a diagnosis another transaction is replacing and then overwrite that one's fact. After
        the wait, READ COMMITTED reads see the other transaction's committed resources."""
        if unit.conn.dialect.name != "postgresql" or not encounter_ids:
            return
        # One round trip for the whole batch (was one per visit: 20 per 100-entry Bundle); the locks are
        # still taken one by one in key order, so two such transactions cannot deadlock.
        keys = [f"report_visit/{eid}" for eid in sorted(set(encounter_ids))]
        unit.conn.execute(_LOCK_ALL, {"keys": keys})

    def contents(self, unit: SqlUnit, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """Current JSON bytes of the given (type, id) keys (deleted or missing ones left out)."""
        wanted = sorted(set(keys))
        out: dict[tuple[str, str], bytes] = {}
        # What this transaction itself wrote is what a read would return (its rows are locked until
        # commit): the hook's reads of a Bundle's own Encounters, Conditions and Patients need no query.
        own = unit.flushed_content(wanted) if isinstance(unit, Tx) else {}
        if own:
            out.update((k, v) for k, v in own.items() if v is not None)
            wanted = [k for k in wanted if k not in own]
        r = resource.c
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            stmt = select(r.res_type, r.res_id, r.content).where(
                tuple_(r.res_type, r.res_id).in_(chunk), r.deleted.is_(False)
            )
            for res_type, res_id, content in unit.conn.execute(stmt):
                if content is not None:
                    out[(res_type, res_id)] = bytes(content)
        return out

    def encounters_of_patients(self, unit: SqlUnit, patient_ids: list[str]) -> list[str]:
        """Encounters whose facts name one of these patients (their age band, sex, province may change)."""
        return _column_among(unit, report_visit.c.encounter_id, report_visit.c.patient_id, patient_ids)

    def replace(self, unit: SqlUnit, rows: list[dict], gone: list[str]) -> None:
        """Write the facts of the given encounters (upsert) and drop those of deleted ones.

        An upsert, not delete + insert: two transactions refreshing the same visit (one wrote the Patient,
        the other the Encounter) then wait for each other instead of failing on the primary key; rows go
        in key order so two such transactions cannot deadlock."""
        touched = sorted({r["encounter_id"] for r in rows} | set(gone))
        deltas: dict[tuple[str, ...], list[int]] = {}
        if touched:
            old = unit.conn.execute(
                select(report_visit).where(among(unit.conn, report_visit.c.encounter_id, touched))
            )
            for row in old:
                cell_key, sums = _contribution(row._mapping)
                cell = deltas.setdefault(cell_key, [0] * len(ROLLUP_SUMS))
                for i, v in enumerate(sums):
                    cell[i] -= v
        for r in rows:
            cell_key, sums = _contribution(r)
            cell = deltas.setdefault(cell_key, [0] * len(ROLLUP_SUMS))
            for i, v in enumerate(sums):
                cell[i] += v
        self._apply_rollup(unit, deltas)
        if gone:
            unit.conn.execute(
                delete(report_visit).where(among(unit.conn, report_visit.c.encounter_id, sorted(gone)))
            )
        if not rows:
            return
        ordered = sorted(rows, key=lambda r: r["encounter_id"])
        unit.conn.execute(_upsert_statement(unit.conn.dialect.name, "visit"), ordered)

    def _apply_rollup(self, unit: SqlUnit, deltas: dict[tuple[str, ...], list[int]]) -> None:
        """Add the deltas to their rollup cells (in key order: concurrent writers cannot deadlock)."""
        changed = [
            {**dict(zip(ROLLUP_KEYS, k)), **dict(zip(ROLLUP_SUMS, v))}
            for k, v in sorted(deltas.items())
            if any(v)
        ]
        if not changed:
            return
        unit.conn.execute(_upsert_statement(unit.conn.dialect.name, "rollup"), changed)

    def rebuild_rollup(self, conn=None) -> None:
        """Recompute the province-month rollup from the facts (after a rebuild, a bulk load, an upgrade)."""
        c = report_visit.c
        keys = [func.coalesce(c[k], "").label(k) for k in ROLLUP_KEYS]
        known = _measures()
        sums = [func.coalesce(known[m], 0).label(m) for m in ROLLUP_SUMS]
        # GROUP BY position: PostgreSQL does not see two bound '' as one expression
        select_cells = select(*keys, *sums).group_by(*(literal_column(str(n + 1)) for n in range(len(keys))))
        stmt = report_visit_month.insert().from_select([*ROLLUP_KEYS, *ROLLUP_SUMS], select_cells)
        if conn is None:
            with self.engine.begin() as own:
                own.execute(delete(report_visit_month))
                own.execute(stmt)
            return
        conn.execute(delete(report_visit_month))
        conn.execute(stmt)

    def ensure_rollup(self) -> None:
        """Fill the rollup once when facts exist without it (a database from before it existed)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('report_visit_month', 0))"))
            has_facts = conn.execute(select(report_visit.c.encounter_id).limit(1)).first() is not None
            has_cells = conn.execute(select(report_visit_month.c.month).limit(1)).first() is not None
            if has_facts and not has_cells:
                self.rebuild_rollup(conn)

    def _rollup_serves(self, dims, measures, filters, period) -> bool:
        """True when the rollup answers this aggregate exactly (its keys, whole months, summed measures)."""
        names = set(dims) | set(filters or {})
        start, end = period
        months_only = not (start or end) or _whole_months(start, end)
        return names <= set(ROLLUP_KEYS) and set(measures) <= set(ROLLUP_SUMS) and months_only

    def _aggregate_rollup(self, dims, measures, filters, period, order_by, limit) -> list[dict]:
        t = report_visit_month.c
        cols = [func.nullif(t[d], "").label(d) for d in dims]
        stmt = select(*cols, *(func.sum(t[m]).label(m) for m in measures))
        conds: list[ColumnElement[bool]] = []
        for name, value in (filters or {}).items():
            values = value if isinstance(value, list) else [value]
            conds.append(
                t[name].in_([v for v in values if v is not None])
            )  # as on the facts: NULL matches nothing
        start, end = period
        if start:
            conds.append(t.month >= start[:7])
        if end:
            conds.append(t.month <= end[:7])
        if start or end:
            conds.append(t.month != "")
        if conds:
            stmt = stmt.where(and_(*conds))
        group = [t[d] for d in dims]
        if group:
            stmt = stmt.group_by(*group)
        # a cell whose visits were all corrected away stays at zero: no group, as on the facts
        stmt = stmt.having(func.sum(t.visits) > 0)
        group = [func.nullif(t[d], "") for d in dims]  # order NULLs as the facts query does
        if order_by:
            stmt = stmt.order_by(literal_column(order_by).desc(), *group)
        elif group:
            stmt = stmt.order_by(*group)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    # -- reads ---------------------------------------------------------------------------------
    def aggregate(
        self,
        dims: list[str],
        measures: list[str],
        filters: dict[str, str | list[str]] | None = None,
        period: tuple[str | None, str | None] = (None, None),
        order_by: str | None = None,
        limit: int | None = None,
        source: str = "visit",
        today: str = "",
    ) -> list[dict]:
        """One row per combination of `dims`: the dims' values and the measures asked for.

        `source` "reexam" reads the re-exam rows instead of the visits (`today`: the local date that decides
        missed from pending)."""
        if source == "visit" and self._rollup_serves(dims, measures, filters, period):
            return self._aggregate_rollup(dims, measures, filters, period, order_by, limit)
        table = report_reexam if source == "reexam" else report_visit
        c = table.c
        known = _reexam_measures(today or dt.date.today().isoformat()) if source == "reexam" else _measures()
        cols = [c[d] for d in dims]
        stmt = select(*cols, *(known[m].label(m) for m in measures)).select_from(table)
        conds: list[ColumnElement[bool]] = []
        for name, value in (filters or {}).items():
            values = value if isinstance(value, list) else [value]
            conds.append(c[name].in_(values))
        start, end = period
        if _whole_months(start, end) and source != "reexam":
            # month bounds use the (month, province_new) index: an index-only scan for province-month
            if start:
                conds.append(c.month >= start[:7])
            if end:
                conds.append(c.month <= end[:7])
        else:
            if start:
                conds.append(c.day >= start)
            if end:
                conds.append(c.day <= end)
        if conds:
            stmt = stmt.where(and_(*conds))
        if cols:
            stmt = stmt.group_by(*cols)
        if order_by:
            stmt = stmt.order_by(literal_column(order_by).desc(), *cols)
        elif cols:
            stmt = stmt.order_by(*cols)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def patients_of_province(self, province: str, facilities: list[str]) -> list[str]:
        """Patients with a visit whose home is in `province` (new-era code) or at one of `facilities`."""
        c = report_visit.c
        cond = c.province_new == province
        if facilities:
            cond = or_(cond, c.facility.in_(facilities))
        stmt = select(c.patient_id).where(and_(cond, c.patient_id.is_not(None))).distinct()
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(stmt)]

    def count(self) -> int:
        """Fact rows."""
        return self._rows(report_visit)

    def encounter_ids(self, batch: int = 2000) -> Iterator[list[str]]:
        """Ids of every current Encounter, in batches (for a rebuild)."""
        return self._current_ids("Encounter", batch)

    def _rows(self, table) -> int:
        """Rows of one reports table."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def _current_ids(self, res_type: str, batch: int) -> Iterator[list[str]]:
        """Ids of every current resource of one type, in batches keyed by id (no long-held cursor)."""
        r = resource.c
        last = ""
        while True:
            stmt = (
                select(r.res_id)
                .where(r.res_type == res_type, r.deleted.is_(False), r.res_id > last)
                .order_by(r.res_id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                ids = [row[0] for row in conn.execute(stmt)]
            if not ids:
                return
            yield ids
            last = ids[-1]

    # -- re-exam appointments (inside a writing transaction) --------------------------------------
    def patients_of_encounters(self, unit: SqlUnit, encounter_ids: list[str]) -> set[str]:
        """Patients named by the current facts of these visits."""
        c = report_visit.c
        return {p for p in _column_among(unit, c.patient_id, c.encounter_id, encounter_ids) if p}

    def appointments_of_patients(self, unit: SqlUnit, patient_ids: list[str]) -> list[str]:
        """Re-exam rows of these patients (their province, age band or sex may change)."""
        return _column_among(unit, report_reexam.c.appointment_id, report_reexam.c.patient_id, patient_ids)

    def reexam_patients(self, unit: SqlUnit, appointment_ids: list[str]) -> set[str]:
        """Patients of these re-exam rows as stored now."""
        return set(
            _column_among(unit, report_reexam.c.patient_id, report_reexam.c.appointment_id, appointment_ids)
        )

    def replace_reexams(self, unit: SqlUnit, rows: list[dict], gone: list[str]) -> None:
        """Upsert the re-exam rows computed from their Appointments; drop the others (match_reexams next)."""
        if gone:
            unit.conn.execute(
                delete(report_reexam).where(among(unit.conn, report_reexam.c.appointment_id, sorted(gone)))
            )
        if not rows:
            return
        ordered = sorted(rows, key=lambda r: r["appointment_id"])
        updates = tuple(n for n in ordered[0] if n != "appointment_id")
        unit.conn.execute(_upsert_statement(unit.conn.dialect.name, "reexam", updates), ordered)

    def patients_of_persons(self, unit: SqlUnit, person_ids: list[str]) -> set[str]:
        """Patients ever linked by these link sets (identity), current members or not."""
        return set(_column_among(unit, identity_link.c.patient_id, identity_link.c.person_id, person_ids))

    def _linked(self, unit: SqlUnit, patient_ids: list[str]) -> set[str]:
        """These patients and every patient actively linked to one of them (same Person)."""
        a, b = identity_link.alias("a").c, identity_link.alias("b").c
        stmt = select(b.patient_id).where(
            among(unit.conn, a.patient_id, patient_ids),
            a.status == "active",
            b.person_id == a.person_id,
            b.status == "active",
        )
        return set(patient_ids) | {row[0] for row in unit.conn.execute(stmt)}

    def match_reexams(self, unit: SqlUnit, patient_ids: set[str], any_facility: bool) -> None:
        """Recompute facility, origin day and the keeping visit of every re-exam row of these patients.

        Serialized per patient (PostgreSQL advisory lock until commit) and run AFTER this transaction
        wrote its facts and rows: a concurrent writer of the same patient's visit or appointment either
        committed before (its rows are seen here, READ COMMITTED) or waits and then sees ours."""
        if not patient_ids:
            return
        # any facility: another hospital's record of the same person is another Patient, linked by identity
        ids = sorted(self._linked(unit, sorted(patient_ids)) if any_facility else patient_ids)
        if unit.conn.dialect.name == "postgresql":
            # One round trip for all the patients' locks (was one per patient, ten per 100-entry Bundle);
            # unnest yields the keys in the sorted order given, so every writer locks in the same order.
            unit.conn.execute(_LOCK_ALL, {"keys": [f"report_reexam/{pid}" for pid in ids]})
        origin_stmt, kept_stmt = _match_statements(unit.conn.dialect.name, any_facility)
        unit.conn.execute(origin_stmt, {"ids": ids})
        unit.conn.execute(kept_stmt, {"ids": ids})

    def reexam_count(self) -> int:
        """Re-exam rows."""
        return self._rows(report_reexam)

    def appointment_ids(self, batch: int = 2000) -> Iterator[list[str]]:
        """Ids of every current Appointment, in batches (for a rebuild)."""
        return self._current_ids("Appointment", batch)
