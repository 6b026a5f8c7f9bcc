"""The SQL implementation of `Storage` (SQLite embedded, PostgreSQL in production).

Every version is kept: `resource` holds the current one, `resource_history` all of them, and the index
tables the search values of the current one. Writes go through a `Tx` (tx.py); this module opens and
commits them, retries on concurrent writers, runs the commit hooks, and answers reads.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine, and_, bindparam, func, or_, select, text, true, tuple_, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.logsafe import log_failure
from fhir_server.search.indexer import Indexer
from fhir_server.search.page import CompartmentPage, CompartmentQuery, Page
from fhir_server.search.query import SearchRequest
from fhir_server.search.registry import Registry, get_registry
from fhir_server.storage.base import (
    Commit,
    HistoryEntry,
    Key,
    StorageRefused,
    StorageUnavailable,
    StoredResource,
    UnitOfWork,
    WriteConflict,
)
from fhir_server.storage.sql import compartment as compartment_sql
from fhir_server.storage.sql import reindex as reindex_sql
from fhir_server.storage.sql.auth import AuthRepository
from fhir_server.storage.sql.db import among, make_engine
from fhir_server.storage.sql.export import ExportRepository
from fhir_server.storage.sql.identity import IdentityRepository
from fhir_server.storage.sql.index_tables import ALL_TABLES
from fhir_server.storage.sql.migrate import create_schema
from fhir_server.storage.sql.outbox import OutboxRepository
from fhir_server.storage.sql.reports import ReportRepository
from fhir_server.storage.sql.rows import COLS, DB_ERRORS, chunks, is_conflict, to_stored
from fhir_server.storage.sql.schema import PARAMS_COMPONENT, resource, resource_history, schema_version
from fhir_server.storage.sql.search import SqlSearch
from fhir_server.storage.sql.tx import Tx

T = TypeVar("T")
log = logging.getLogger(__name__)

# How often a process looks at the search-parameter version row for changes made by other processes.
REGISTRY_CHECK_SECONDS = 1.0


def translate(exc: BaseException) -> BaseException:
    """A database error as what it means to the layers above: conflict, unavailable, or refused."""
    if is_conflict(exc):  # type: ignore[arg-type]
        return WriteConflict(f"concurrent write conflict, retry the request ({type(exc).__name__})")
    raw = getattr(exc, "orig", exc)
    # psycopg files "program limit exceeded" (SQLSTATE 54: an index row over the btree limit, too many
    # columns...) under OperationalError, but it is about the data: retrying cannot help, and the
    # group commit must split to find the record that caused it.
    if str(getattr(raw, "sqlstate", "") or "").startswith("54"):
        return StorageRefused(type(raw).__name__)
    if isinstance(exc, (OperationalError, InterfaceError)) or isinstance(
        raw, (psycopg.OperationalError, psycopg.InterfaceError)
    ):
        return StorageUnavailable(type(raw).__name__)
    return StorageRefused(type(raw).__name__)


class SqlStore:
    """Resource storage over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, registry: Registry | None = None) -> None:
        self.engine = engine
        # Reads and searches are single statements (or several, each with its own snapshot under READ
        # COMMITTED anyway): on PostgreSQL they run in autocommit, which saves the BEGIN and ROLLBACK
        # round trips psycopg and the pool add around every checkout (3 round trips -> 1; issue 20), and
        # psycopg keeps its prepared statements (it forgets them on every ROLLBACK a pool return sends).
        self.reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.registry = registry or get_registry()
        self.indexer = Indexer(self.registry)
        self.searcher = SqlSearch(self.registry)
        self.identity = IdentityRepository(engine, self.reader)
        self.auth = AuthRepository(engine)  # registered clients, used jti, signing key (issue 13)
        self.outbox = OutboxRepository(engine)  # filled only when a hub pulls (LIENTHONG_OUTBOX)
        self.exports = ExportRepository(engine, self.searcher)  # Bulk Data $export jobs
        self.reports = ReportRepository(engine)  # visit facts, filled by fhir_server/reports/hook.py
        self._commit_listeners: list[Callable[[Commit], None]] = []
        self._flush_listeners: list[Callable[[UnitOfWork, list[Key]], None]] = []
        self._params_version: int | None = None
        self._params_checked = 0.0
        self._params_lock = threading.Lock()
        self.refresh_registry(force=True)

    # -- hooks --------------------------------------------------------------------------------------
    def on_commit(self, listener: Callable[[Commit], None]) -> None:
        """Call `listener` after every commit that wrote something (errors are logged, not raised)."""
        self._commit_listeners.append(listener)

    def on_flush(self, listener: Callable[[UnitOfWork, list[Key]], None]) -> None:
        """Call `listener(tx, keys)` inside the transaction after each flush that wrote `keys`."""
        self._flush_listeners.append(listener)

    def flushed(self, tx: Tx, keys: list[Key]) -> None:
        """Called by a Tx after it wrote `keys`: in-transaction listeners, parameter bookkeeping."""
        if any(t == "SearchParameter" for t, _ in keys):
            tx.params_changed = True
        for listener in self._flush_listeners:
            listener(tx, keys)

    # -- units of work ------------------------------------------------------------------------------
    @contextmanager
    def begin(self, origin: str = "api") -> Iterator[Tx]:
        """Open a write transaction; commit on success, roll back on any exception.

        Database errors leave as `WriteConflict` (another writer: run again), `StorageUnavailable` or
        `StorageRefused`, never as driver exceptions carrying SQL or values."""
        self.refresh_registry()
        try:
            with self.engine.connect().execution_options(write=True) as conn:
                with conn.begin():
                    tx = Tx(self, conn, origin=origin)
                    yield tx
                    tx.flush()
                    if tx.params_changed:
                        conn.execute(
                            update(schema_version)
                            .where(schema_version.c.component == PARAMS_COMPONENT)
                            .values(version=schema_version.c.version + 1)
                        )
        except (*DB_ERRORS, DBAPIError) as exc:
            raise translate(exc) from exc
        if tx.params_changed:
            self.refresh_registry(force=True)
        if tx.written:
            commit = Commit(set(tx.written), origin)
            for listener in self._commit_listeners:
                try:
                    listener(commit)
                except Exception as exc:  # the data is committed; a listener's failure must not undo that
                    log_failure(log, "after-commit listener failed", exc)

    def run(self, work: Callable[[Tx], T], retries: int = 8, origin: str = "api") -> T:
        """Run `work(tx)` in a write transaction, retrying (with jittered backoff) when a concurrent
        writer changed or created the same resource between our read and our write."""
        for attempt in range(retries):
            try:
                with self.begin(origin) as tx:
                    return work(tx)
            except WriteConflict as exc:
                if attempt == retries - 1:
                    raise FhirError.conflict(
                        msg("concurrent write conflict, retry the request ({detail})", detail=exc.diagnostics)
                    )
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    # -- custom search parameters -------------------------------------------------------------------
    def refresh_registry(self, force: bool = False) -> None:
        """Reload custom SearchParameters when another unit of work (here or in another process)
        committed a change to them; looks at the version row at most once a second."""
        now = time.monotonic()
        if not force and now - self._params_checked < REGISTRY_CHECK_SECONDS:
            return
        with self._params_lock:
            self._params_checked = now
            try:
                with self.engine.connect() as conn:
                    version = conn.execute(
                        select(schema_version.c.version).where(schema_version.c.component == PARAMS_COMPONENT)
                    ).scalar()
            except DBAPIError as exc:
                log_failure(log, "search parameter version check failed", exc)
                return
            if version == self._params_version and not force:
                return
            self._params_version = version
            self.registry.reload_custom(r.as_dict() for r in self.iter_current("SearchParameter"))
            self.searcher.templates.clear()  # shapes compiled against the old parameters

    def read_in_transactions(self) -> None:
        """Run reads, searches and link-set lookups in transactions, as before autocommit reads (A/B)."""
        self.reader = self.identity.reader = self.engine

    # -- reads ----------------------------------------------------------------------------------------
    def read(self, res_type: str, res_id: str) -> StoredResource | None:
        """Current version (or delete marker) of one resource."""
        sql, order = self._read_sql
        if self.reader is not self.engine and self.engine.dialect.driver == "psycopg":
            return self._read_on_driver(sql, res_type, res_id)
        named = {"t": res_type, "i": res_id}
        params = tuple(named[k] for k in order) if order else named
        with self.reader.connect() as conn:
            row = conn.exec_driver_sql(sql, params).first()
        return to_stored(row) if row else None

    def _read_on_driver(self, sql: str, res_type: str, res_id: str) -> StoredResource | None:
        """The read on the pooled psycopg connection itself, in autocommit, on a binary cursor.

        SQLAlchemy's Connection, its events and result metadata were about a quarter of a read's server
        CPU (a read costs 66 against 160-230 µs of client-side CPU in process); the statement is the same
        prepared SELECT, and the connection goes back to the pool transactional as from any checkout."""
        fairy = self.engine.raw_connection()
        try:
            conn: Any = fairy.driver_connection
            conn.autocommit = True
            with conn.cursor(binary=True) as cur:
                cur.execute(sql, {"t": res_type, "i": res_id})
                row = cur.fetchone()
            conn.autocommit = False
        except BaseException:
            fairy.invalidate()  # a failed read may leave the connection in any state: never reuse it
            raise
        finally:
            fairy.close()
        if row is None:
            return None
        rid, rtype, rkey, version, last_updated, deleted, content, content_hash = row
        return StoredResource(rid, rtype, rkey, version, last_updated, bool(deleted), content, content_hash)

    def read_is_ready(self) -> bool:
        """True when a pooled connection is idle: a read now neither waits for one nor opens one."""
        checkedin = getattr(self.engine.pool, "checkedin", None)
        return checkedin is not None and checkedin() > 0

    @functools.cached_property
    def _read_sql(self) -> tuple[str, tuple[str, ...]]:
        """The read-by-id statement compiled once for this dialect (the hottest query of the server).

        Executing the driver SQL skips SQLAlchemy's per-call statement building and cache-key work,
        which profiled as about a fifth of a read's server CPU; every column is a plain driver type.
        """
        stmt = select(*COLS).where(
            and_(resource.c.res_type == bindparam("t"), resource.c.res_id == bindparam("i"))
        )
        compiled = stmt.compile(dialect=self.engine.dialect)
        # Positional drivers (sqlite3: qmark) take a tuple in the compiled order; psycopg takes names.
        return compiled.string, tuple(compiled.positiontup or ()) if compiled.positional else ()

    def read_many(self, keys: Iterable[Key]) -> dict[Key, StoredResource]:
        """Current versions of many resources in few queries (missing ones are absent)."""
        wanted = sorted(set(keys))
        out: dict[Key, StoredResource] = {}
        with self.reader.connect() as conn:
            for chunk in chunks(wanted, 500):
                if conn.dialect.name == "postgresql":
                    stmt = select(*COLS).where(
                        among(conn, resource.c.res_type, sorted({k[0] for k in chunk})),
                        among(conn, resource.c.res_id, [k[1] for k in chunk]),
                    )
                else:
                    stmt = select(*COLS).where(tuple_(resource.c.res_type, resource.c.res_id).in_(chunk))
                chunk_keys = set(chunk)
                for row in conn.execute(stmt):
                    key = (row.res_type, row.res_id)
                    if key in chunk_keys:  # the two arrays over-match: keep only the asked pairs
                        out[key] = to_stored(row)
        return out

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version."""
        with self.reader.connect() as conn:
            return self.vread_on(conn, res_type, res_id, version)

    def vread_on(self, conn, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version, on a given connection (inside a unit of work)."""
        h = resource_history.c
        row = conn.execute(
            select(h.rid, h.res_type, h.res_id, h.version, h.last_updated, h.deleted, h.content).where(
                and_(h.res_type == res_type, h.res_id == res_id, h.version == version)
            )
        ).first()
        if not row:
            return None
        return StoredResource(
            row.rid, row.res_type, row.res_id, row.version, row.last_updated, bool(row.deleted), row.content
        )

    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        since: int | None = None,
        before: int | None = None,
        count: int = 50,
        after: tuple[int, int] | None = None,
    ) -> list[HistoryEntry]:
        """Versions newest first; `after` = (last_updated, position) continues a page."""
        h = resource_history.c
        cond = []
        if res_type:
            cond.append(h.res_type == res_type)
        if res_id:
            cond.append(h.res_id == res_id)
        if since is not None:
            cond.append(h.last_updated >= since)
        if before is not None:
            cond.append(h.last_updated < before)
        if after is not None:
            ts, hid = after
            cond.append(or_(h.last_updated < ts, and_(h.last_updated == ts, h.hid < hid)))
        stmt = (
            select(
                h.hid, h.rid, h.res_type, h.res_id, h.version, h.last_updated, h.deleted, h.method, h.content
            )
            .where(and_(true(), *cond))
            .order_by(h.last_updated.desc(), h.hid.desc())
            .limit(count)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            HistoryEntry(
                StoredResource(
                    r.rid, r.res_type, r.res_id, r.version, r.last_updated, bool(r.deleted), r.content
                ),
                r.method,
                r.hid,
            )
            for r in rows
        ]

    def history_count(
        self, res_type: str | None = None, res_id: str | None = None, since: int | None = None
    ) -> int:
        """Number of versions matching a history query (for Bundle.total)."""
        h = resource_history.c
        cond = [
            c
            for c in (
                h.res_type == res_type if res_type else None,
                h.res_id == res_id if res_id else None,
                h.last_updated >= since if since is not None else None,
            )
            if c is not None
        ]
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(resource_history).where(and_(true(), *cond))
            ).scalar_one()

    def find(self, res_type: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids of current resources matching search criteria."""
        self.refresh_registry()
        with self.engine.connect() as conn:
            return self.searcher.find(conn, res_type, params)

    def search(
        self,
        res_type: str | None,
        req: SearchRequest,
        *,
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        types: list[str] | None = None,
    ) -> Page:
        """One page of a type (or system) search."""
        self.refresh_registry()
        with self.reader.connect() as conn:
            return self.searcher.page(conn, res_type, req, base_url, strict, default_count, types)

    def compartment(self, patient_ids: list[str], query: CompartmentQuery) -> CompartmentPage:
        """The Patient compartment of these Patients plus the resources it references."""
        return compartment_sql.compartment(self.reader, patient_ids, query)

    def iter_current(self, res_type: str, batch: int = 2000) -> Iterator[StoredResource]:
        """Every current, non-deleted resource of one type, streamed in rid order."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*COLS)
                    .where(
                        resource.c.res_type == res_type, resource.c.deleted.is_(False), resource.c.rid > last
                    )
                    .order_by(resource.c.rid)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield to_stored(row)
            last = rows[-1].rid

    def count_current(self, res_type: str | None = None) -> int:
        """Number of current, non-deleted resources (of one type)."""
        cond = [resource.c.deleted.is_(False)] + ([resource.c.res_type == res_type] if res_type else [])
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(resource).where(and_(*cond))).scalar_one()

    def reindex(self, res_type: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the search index rows of current resources; returns how many were indexed."""
        self.refresh_registry(force=True)
        return reindex_sql.reindex(self.engine, self.indexer, res_type, progress)

    def analyze(self) -> None:
        """Refresh the planner's statistics of the resource and index tables after a bulk load.

        Plans made on tables with stale statistics go wrong by orders of magnitude (a token search
        picking a sequential scan); autovacuum catches up eventually, a bulk load should not wait.
        """
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                for table in (resource, resource_history, *ALL_TABLES):
                    conn.execute(text(f"ANALYZE {table.name}"))
            else:
                conn.exec_driver_sql("PRAGMA optimize")  # SQLite analyzes only what needs it

    def ping(self) -> None:
        """One round trip to the database (readiness checks)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()


def open_store(url: str, pool_size: int = 4, create: bool = True) -> SqlStore:
    """Open (and by default create/migrate) the store at a database URL."""
    engine = make_engine(url, pool_size=pool_size)
    if create:
        create_schema(engine)
    return SqlStore(engine)
