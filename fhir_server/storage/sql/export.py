"""Bulk Data `$export` jobs: their table, how workers claim them, and the keyset-paged row stream.

A job is a row of `export_job`; any process that serves the API can run it. Workers claim a job with
a row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so two workers never
run the same job, and keep a heartbeat while they write: a `running` job whose heartbeat is older than
the stale limit belonged to a process that died, and the next claim starts it again.

Rows are read in rid order, one short query per page, as the stored JSON bytes: nothing is parsed or
re-serialized, and no more than one page is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import ColumnElement, TextClause

from fhir_server.search.compartment import compartment_pairs
from fhir_server.search.query import parse_request
from fhir_server.storage.sql.compartment import _pairs_condition
from fhir_server.storage.sql.db import among
from fhir_server.storage.sql.index_tables import sp_reference
from fhir_server.storage.sql.schema import metadata, resource
from fhir_server.storage.sql.search import SqlSearch
from fhir_server.timeutil import now_us

PAGE_ROWS = 1000  # rows per keyset page: one page of stored bytes is all an export holds in memory

export_job = Table(
    "export_job",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),  # queued | running | done | failed | cancelled
    Column("level", String(16), nullable=False),  # system | patient | group
    Column("params", LargeBinary, nullable=False),  # JSON: types, since, filters, patients
    Column("request", Text, nullable=False),  # the kick-off URL, echoed in the manifest
    Column("owner", String(256), nullable=True),  # the principal's subject when auth is on
    Column("created_at", BigInteger, nullable=False),
    Column("transaction_time", BigInteger, nullable=True),
    Column("worker", String(128), nullable=True),
    Column("heartbeat", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("progress", String(200), nullable=True),
    Column("manifest", LargeBinary, nullable=True),  # JSON: output/error entries with file names
    Column("error", Text, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
)

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class ExportJob:
    """One export job as stored."""

    id: str
    status: str
    level: str
    params: dict
    request: str
    owner: str | None
    created_at: int
    transaction_time: int | None
    worker: str | None
    attempts: int
    progress: str | None
    manifest: dict | None
    error: str | None
    expires_at: int | None


def _job(row) -> ExportJob:
    return ExportJob(
        row.id,
        row.status,
        row.level,
        orjson.loads(row.params),
        row.request,
        row.owner,
        row.created_at,
        row.transaction_time,
        row.worker,
        row.attempts,
        row.progress,
        orjson.loads(row.manifest) if row.manifest else None,
        row.error,
        row.expires_at,
    )


class ExportRepository:
    """The export jobs of one database and the row stream they read."""

    def __init__(self, engine: Engine, searcher: SqlSearch) -> None:
        self.engine = engine
        self.searcher = searcher

    # -- jobs -------------------------------------------------------------------------------------
    def create(self, job_id: str, level: str, params: dict, request: str, owner: str | None) -> None:
        """Queue a new job."""
        values = {
            "id": job_id,
            "status": "queued",
            "level": level,
            "params": orjson.dumps(params),
            "request": request,
            "owner": owner,
            "created_at": now_us(),
            "attempts": 0,
        }
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            conn.execute(insert(export_job).values(**values))

    def get(self, job_id: str) -> ExportJob | None:
        """One job, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(export_job).where(export_job.c.id == job_id)).first()
        return _job(row) if row else None

    def claim(self, worker: str, stale_before: int) -> ExportJob | None:
        """Take the oldest queued job, or a running one whose worker stopped beating; None when idle.

        The row lock makes the claim exclusive across threads and processes; SKIP LOCKED lets a second
        worker take the next job instead of waiting for the first one's claim to commit."""
        c = export_job.c
        claimable = or_(c.status == "queued", and_(c.status == "running", c.heartbeat < stale_before))
        stmt = select(export_job).where(claimable).order_by(c.created_at, c.id).limit(1)
        now = now_us()
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            row = conn.execute(stmt).first()
            if row is None:
                return None
            conn.execute(
                update(export_job)
                .where(c.id == row.id)
                .values(
                    status="running",
                    worker=worker,
                    heartbeat=now,
                    transaction_time=now,
                    attempts=c.attempts + 1,
                    progress=None,
                )
            )
            row = conn.execute(select(export_job).where(c.id == row.id)).one()
        return _job(row)

    def beat(self, job_id: str, worker: str, progress: str) -> bool:
        """Record progress; False when the job is no longer this worker's (cancelled or taken over)."""
        return self._set(job_id, worker, progress=progress, heartbeat=now_us())

    def finish(self, job_id: str, worker: str, manifest: dict, expires_at: int) -> bool:
        """Mark the job done with its manifest (file names, counts)."""
        return self._set(
            job_id, worker, status="done", manifest=orjson.dumps(manifest), expires_at=expires_at
        )

    def fail(self, job_id: str, worker: str, error: str, expires_at: int) -> bool:
        """Mark the job failed (the error is a short text without patient data)."""
        return self._set(job_id, worker, status="failed", error=error, expires_at=expires_at)

    def _set(self, job_id: str, worker: str, **values) -> bool:
        c = export_job.c
        stmt = (
            update(export_job)
            .where(c.id == job_id, c.worker == worker, c.status == "running")
            .values(**values)
        )
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return bool(conn.execute(stmt).rowcount)

    def cancel(self, job_id: str) -> ExportJob | None:
        """Mark a job cancelled (its worker stops at the next page); the job as it was, or None."""
        c = export_job.c
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            row = conn.execute(select(export_job).where(c.id == job_id, c.status != "cancelled")).first()
            if row is None:
                return None
            conn.execute(update(export_job).where(c.id == job_id).values(status="cancelled", expires_at=0))
        return _job(row)

    def release(self, job_id: str, worker: str) -> bool:
        """Put a job this worker runs back in the queue (a clean shutdown: the next process starts it
        at once instead of waiting for the heartbeat to go stale)."""
        c = export_job.c
        stmt = (
            update(export_job)
            .where(c.id == job_id, c.worker == worker, c.status == "running")
            .values(status="queued", worker=None, heartbeat=None, progress=None)
        )
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return bool(conn.execute(stmt).rowcount)

    def unfinished(self) -> int:
        """Jobs queued or running (in any process)."""
        stmt = select(func.count()).select_from(export_job).where(export_job.c.status.in_(ACTIVE))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def expired(self, now: int) -> list[str]:
        """Ids of finished jobs whose files have expired (or were cancelled)."""
        c = export_job.c
        stmt = select(c.id).where(c.status.not_in(ACTIVE), c.expires_at.is_not(None), c.expires_at < now)
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(stmt)]

    def forget(self, job_id: str) -> None:
        """Delete a job row (after its files were removed)."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            conn.execute(delete(export_job).where(export_job.c.id == job_id))

    # -- what to export ---------------------------------------------------------------------------
    def types_present(self) -> list[str]:
        """Resource types with at least one current resource, sorted."""
        r = resource.c
        with self.engine.connect() as conn:
            return sorted(
                t for (t,) in conn.execute(select(r.res_type).where(r.deleted == false()).distinct())
            )

    def check_filter(self, res_type: str, query: str) -> None:
        """Raise a 400 FhirError when a _typeFilter query uses parameters search does not know."""
        self._filter_conditions(resource.alias("r"), res_type, [query])

    def _filter_conditions(self, r, res_type: str, queries: list[str]) -> ColumnElement:
        from urllib.parse import parse_qsl

        branches = []
        for query in queries:
            req = parse_request(parse_qsl(query, keep_blank_values=True))
            branches.append(and_(*self.searcher._where(r, res_type, req, strict=True, base_url=None)))
        return or_(*branches)

    def pages(
        self,
        res_type: str,
        until: int,
        since: int | None = None,
        filters: list[str] | None = None,
        patients: list[str] | None = None,
        compartment: bool = False,
    ) -> Iterator[list[bytes]]:
        """Stored JSON of the current resources of one type, page by page in rid order.

        `until`: only resources last changed at or before it (the job's transactionTime); `since`:
        only those changed after it; `filters`: _typeFilter queries (OR-ed); `compartment`: only
        resources in the compartment of `patients` (of any Patient when None)."""
        r = resource.alias("r")
        conds: list[ColumnElement] = [
            r.c.res_type == res_type,
            r.c.deleted == false(),
            r.c.last_updated <= until,
        ]
        if since is not None:
            conds.append(r.c.last_updated > since)
        if filters:
            conds.append(self._filter_conditions(r, res_type, filters))
        last = -1
        while True:
            with self.engine.connect() as conn:
                where = list(conds)
                if compartment:
                    where.append(self._in_compartment(conn, r, res_type, patients))
                stmt = (
                    select(r.c.rid, r.c.content)
                    .where(*where, r.c.rid > last)
                    .order_by(r.c.rid)
                    .limit(PAGE_ROWS)
                )
                rows = conn.execute(stmt).all()
            if not rows:
                return
            last = rows[-1].rid
            yield [bytes(row.content) for row in rows]
            if len(rows) < PAGE_ROWS:
                return

    def _in_compartment(self, conn, r, res_type: str, patients: list[str] | None) -> ColumnElement:
        if res_type == "Patient":
            return among(conn, r.c.res_id, patients) if patients is not None else r.c.rid.is_not(None)
        pairs = tuple(p for p in compartment_pairs() if p[0] == res_type)
        ref = sp_reference.alias("ref")
        conds: list[ColumnElement | TextClause] = [
            ref.c.rid == r.c.rid,
            ref.c.target_type == "Patient",
            _pairs_condition(ref, pairs),
        ]
        if patients is not None:
            conds.append(among(conn, ref.c.target_id, patients))
        return exists().where(*conds)
