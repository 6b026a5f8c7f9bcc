"""The visit facts table (one row per Encounter) and the SQL of summaries over it.

Rows are written by the reports hook INSIDE the transaction that wrote the Encounter, its diagnosis, its
Patient or its Organization (fhir_server/reports/hook.py computes them), so a fact is never older than the
resources it comes from. Every period is a precomputed column: a province-month summary is one GROUP BY over
two indexed text columns, the same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Index,
    Integer,
    String,
    Table,
    and_,
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
from fhir_server.storage.sql.schema import metadata, resource

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

DIMENSIONS = (
    "facility",
    "province_old",
    "province_new",
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "visit_class",
    "outcome",
    "destination",
    "icd_code",
    "icd_block",
    "icd_chapter",
    "age_band",
    "sex",
    "bhyt",
    "notifiable",
)


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


# A function scan over the array yields its elements in order, so the locks follow the sorted keys.
_LOCK_ALL = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k"
)


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
        if not patient_ids:
            return []
        c = report_visit.c
        stmt = select(c.encounter_id).where(among(unit.conn, c.patient_id, patient_ids))
        return [row[0] for row in unit.conn.execute(stmt)]

    def replace(self, unit: SqlUnit, rows: list[dict], gone: list[str]) -> None:
        """Write the facts of the given encounters (upsert) and drop those of deleted ones.

        An upsert, not delete + insert: two transactions refreshing the same visit (one wrote the Patient,
        the other the Encounter) then wait for each other instead of failing on the primary key; rows go
        in key order so two such transactions cannot deadlock."""
        if gone:
            unit.conn.execute(
                delete(report_visit).where(among(unit.conn, report_visit.c.encounter_id, sorted(gone)))
            )
        if not rows:
            return
        ordered = sorted(rows, key=lambda r: r["encounter_id"])
        updates = [col.name for col in report_visit.c if col.name != "encounter_id"]
        key = [report_visit.c.encounter_id]
        if unit.conn.dialect.name == "postgresql":
            pg = pg_insert(report_visit)
            unit.conn.execute(
                pg.on_conflict_do_update(index_elements=key, set_={n: pg.excluded[n] for n in updates}),
                ordered,
            )
            return
        lite = sqlite_insert(report_visit)
        unit.conn.execute(
            lite.on_conflict_do_update(index_elements=key, set_={n: lite.excluded[n] for n in updates}),
            ordered,
        )

    # -- reads ---------------------------------------------------------------------------------
    def aggregate(
        self,
        dims: list[str],
        measures: list[str],
        filters: dict[str, str | list[str]] | None = None,
        period: tuple[str | None, str | None] = (None, None),
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """One row per combination of `dims`: the dims' values and the measures asked for."""
        c = report_visit.c
        known = _measures()
        cols = [c[d] for d in dims]
        stmt = select(*cols, *(known[m].label(m) for m in measures)).select_from(report_visit)
        conds: list[ColumnElement[bool]] = []
        for name, value in (filters or {}).items():
            values = value if isinstance(value, list) else [value]
            conds.append(c[name].in_(values))
        start, end = period
        if _whole_months(start, end):
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
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(report_visit)).scalar_one())

    def encounter_ids(self, batch: int = 2000) -> Iterator[list[str]]:
        """Ids of every current Encounter, in batches (for a rebuild)."""
        r = resource.c
        last = ""
        while True:
            stmt = (
                select(r.res_id)
                .where(r.res_type == "Encounter", r.deleted.is_(False), r.res_id > last)
                .order_by(r.res_id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                ids = [row[0] for row in conn.execute(stmt)]
            if not ids:
                return
            yield ids
            last = ids[-1]
