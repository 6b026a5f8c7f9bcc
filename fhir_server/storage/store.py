"""Versioned resource storage: every version kept, current row + search index rows written in bulk.

Writes go through a `Tx` (one database transaction). A Tx buffers the versions it writes and flushes
them with one bulk statement per table at commit (COPY on PostgreSQL), so a 100-entry bundle costs a
handful of round trips.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson
import psycopg
from sqlalchemy import (
    BigInteger,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from fhir_server.errors import FhirError
from fhir_server.search.engine import SearchEngine
from fhir_server.search.indexer import Indexer
from fhir_server.storage.db import among, create_schema, is_sqlite, make_engine
from fhir_server.storage.schema import resource, resource_history
from fhir_server.timeutil import instant, now_us


@dataclass(slots=True)
class StoredResource:
    """One version of a resource as stored: JSON bytes with id and meta already set."""

    rid: int | None
    res_type: str
    res_id: str
    version: int
    last_updated: int
    deleted: bool
    content: bytes | None
    content_hash: str = ""

    @property
    def etag(self) -> str:
        """Weak ETag carrying the version id."""
        return f'W/"{self.version}"'

    @property
    def ref(self) -> str:
        """Relative reference "Type/id"."""
        return f"{self.res_type}/{self.res_id}"

    def as_dict(self) -> dict:
        """Parse the stored JSON (only where a caller really needs the structure)."""
        return orjson.loads(self.content) if self.content else {}


def content_hash(body: dict) -> str:
    """Hash of the resource ignoring server-managed meta, to detect no-op updates."""
    meta = body.get("meta")
    if "id" in body or (meta and ("versionId" in meta or "lastUpdated" in meta)):
        body = {k: v for k, v in body.items() if k != "id"}
        if meta is not None:
            rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
            if rest:
                body["meta"] = rest
            else:
                body.pop("meta")
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def render(body: dict, res_id: str, version: int, last_updated: int) -> bytes:
    """Serialize the resource with server-managed id/meta, keeping the client's element order."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    out = {"resourceType": body["resourceType"], "id": res_id, "meta": meta}
    for key, value in body.items():
        if key not in out:
            out[key] = value
    return orjson.dumps(out)


@dataclass
class _Pending:
    """The state a Tx will leave one resource in, plus the history rows leading there."""

    base: StoredResource | None  # what the database had when the Tx first touched it
    final: StoredResource
    body: dict | None
    history: list[tuple[StoredResource, str]] = field(default_factory=list)


class WriteConflict(FhirError):
    """Another transaction changed a resource between our read and our write (optimistic locking)."""

    def __init__(self, msg: str):
        super().__init__(409, FhirError.conflict(msg).outcome)


class Tx:
    """One database transaction of resource writes; use `Store.begin()`.

    A child Tx (`parent=`) stages one unit of work (a Bundle) on top of its parent: it reads through
    the parent's staged writes, and its `flush` merges into the parent instead of writing, so a failed
    unit is dropped by discarding the child while the parent commits everything else at once.
    """

    def __init__(self, store: "Store", conn: Connection, parent: "Tx | None" = None):
        self.store = store
        self.conn = conn
        self.parent = parent
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._seen: dict[tuple[str, str], StoredResource | None] = {}
        self.written: list[tuple[str, str]] = []  # (type, id) of every resource a flush wrote

    # -- reads (see this Tx's own writes) -------------------------------------------------------
    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Load current rows for many (type, id) keys in one query (no locks: see _update_resources)."""
        if self.parent is not None:
            self.parent.prefetch(k for k in keys if k not in self._pending)
            return
        wanted = [k for k in set(keys) if k not in self._seen and k not in self._pending]
        for chunk in _chunks(wanted, 500 if is_sqlite(self.store.engine) else 5000):
            found = _current_rows(self.conn, chunk)
            for key in chunk:
                self._seen[key] = found.get(key)

    def current(self, res_type: str, res_id: str) -> StoredResource | None:
        """The latest version (possibly a delete marker) as seen inside this transaction."""
        key = (res_type, res_id)
        if key in self._pending:
            return self._pending[key].final
        if self.parent is not None:
            return self.parent.current(res_type, res_id)
        if key not in self._seen:
            self.prefetch([key])
        return self._seen[key]

    # -- writes ---------------------------------------------------------------------------------
    def put(
        self,
        body: dict,
        res_id: str,
        method: str,
        if_match: int | None = None,
        fresh_id: bool = False,
    ) -> tuple[StoredResource, bool, bool]:
        """Write a new version of a resource; returns (stored, created, changed).

        `fresh_id` says the id was just generated by the server, so there is nothing to look up.
        """
        res_type = body["resourceType"]
        current = None if fresh_id else self.current(res_type, res_id)
        if if_match is not None:
            have = current.version if current and not current.deleted else None
            if have != if_match:
                raise FhirError.precondition_failed(
                    f"If-Match version {if_match} does not match current version {have} of {res_type}/{res_id}"
                )
        digest = content_hash(body)
        if current is not None and not current.deleted and current.content_hash == digest:
            return current, False, False
        version = current.version + 1 if current else 1
        ts = now_us()
        stored = StoredResource(
            current.rid if current else None,
            res_type,
            res_id,
            version,
            ts,
            False,
            render(body, res_id, version, ts),
            digest,
        )
        self._record(current, stored, body, method)
        return stored, current is None or current.deleted, True

    def delete(self, res_type: str, res_id: str) -> StoredResource | None:
        """Mark a resource deleted (a new version); returns the delete marker or None if nothing to do."""
        current = self.current(res_type, res_id)
        if current is None or current.deleted:
            return None
        ts = now_us()
        marker = StoredResource(current.rid, res_type, res_id, current.version + 1, ts, True, None, "")
        self._record(current, marker, None, "DELETE")
        return marker

    def _record(
        self, before: StoredResource | None, stored: StoredResource, body: dict | None, method: str
    ) -> None:
        key = (stored.res_type, stored.res_id)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(before, stored, body)
        pending.final, pending.body = stored, body
        pending.history.append((stored, method))

    # -- flush ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write all buffered versions: current rows, history rows, index rows."""
        if self.parent is not None:
            self._merge_into_parent()
            return
        if not self._pending:
            return
        pendings = list(self._pending.values())
        self._pending = {}
        conn = self.conn
        # Key order: two writers inserting overlapping sets wait on each other in the same order
        # (ON CONFLICT waits for the other's commit), so they cannot deadlock.
        new = sorted(
            (p for p in pendings if p.final.rid is None), key=lambda p: (p.final.res_type, p.final.res_id)
        )
        if new:
            rids = _insert_resources(conn, [_resource_row(p.final) for p in new])
            raced = [p for p in new if (p.final.res_type, p.final.res_id) not in rids]
            if raced:
                self._absorb_identical_creates(raced)
                dropped = {id(p) for p in raced}
                new = [p for p in new if id(p) not in dropped]
                pendings = [p for p in pendings if id(p) not in dropped]
            for p in new:
                p.final.rid = rid = rids[(p.final.res_type, p.final.res_id)]
                for stored, _ in p.history:
                    stored.rid = rid
        new_ids = {id(p) for p in new}
        old = [p for p in pendings if id(p) not in new_ids]
        if old:
            _update_resources(conn, sorted(old, key=lambda p: p.final.rid))
        copy_rows(
            conn,
            resource_history,
            [
                (p.final.rid, s.res_type, s.res_id, s.version, s.last_updated, s.deleted, method, s.content)
                for p in pendings
                for s, method in p.history
            ],
            _HISTORY_COLUMNS,
        )
        self._write_index(pendings, [p.final.rid for p in old])
        for p in pendings:
            self._seen[(p.final.res_type, p.final.res_id)] = p.final
            self.written.append((p.final.res_type, p.final.res_id))

    def _absorb_identical_creates(self, raced: list[_Pending]) -> None:
        """Accept resources another writer created since our read when theirs is exactly what we were
        creating (same content, version 1): the outcome is the same whichever write came first, so
        ours becomes a no-op. Anything else is a real conflict and the unit of work runs again."""
        keys = [(p.final.res_type, p.final.res_id) for p in raced]
        theirs = _current_rows(self.conn, keys)
        for p, key in zip(raced, keys):
            other = theirs.get(key)
            same = (
                other is not None
                and not other.deleted
                and len(p.history) == 1
                and other.version == p.final.version
                and other.content_hash == p.final.content_hash
            )
            if not same:
                raise WriteConflict(f"{key[0]}/{key[1]} was created by a concurrent writer")
            self._seen[key] = other

    def _merge_into_parent(self) -> None:
        staged = self.parent._pending
        for key, p in self._pending.items():
            if key in staged:
                staged[key].final, staged[key].body = p.final, p.body
                staged[key].history.extend(p.history)
            else:
                staged[key] = p
        self._pending = {}

    def _write_index(self, pendings: list[_Pending], replaced_rids: list[int]) -> None:
        indexer = self.store.indexer
        # PostgreSQL takes all rids as one array; SQLite's IN lists stay within its variable limit.
        size = 500 if is_sqlite(self.store.engine) else max(1, len(replaced_rids))
        for table in indexer.tables:
            for chunk in _chunks(replaced_rids, size):
                self.conn.execute(delete(table).where(among(self.conn, table.c.rid, chunk, BigInteger())))
        batches: dict = {}
        for p in pendings:
            if p.final.deleted or p.body is None:
                continue
            for table, rows in indexer.tuples(p.final.rid, p.final.res_type, p.body).items():
                batches.setdefault(table, []).extend(rows)
        for table, rows in batches.items():
            copy_rows(self.conn, table, rows)


_COLS = (
    resource.c.rid,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.content,
    resource.c.content_hash,
)


def _row(r) -> StoredResource:
    return StoredResource(
        r.rid, r.res_type, r.res_id, r.version, r.last_updated, bool(r.deleted), r.content, r.content_hash
    )


def _current_rows(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
    """Current rows of (type, id) keys in one query (no locks: see _update_resources)."""
    if conn.dialect.name != "postgresql":
        stmt = select(*_COLS).where(tuple_(resource.c.res_type, resource.c.res_id).in_(keys))
    else:
        # Two array parameters keep the SQL text constant (a 500-tuple IN list cost more than the
        # query); the few over-matches (a type of one key with the id of another) are dropped.
        stmt = select(*_COLS).where(
            among(conn, resource.c.res_type, sorted({k[0] for k in keys})),
            among(conn, resource.c.res_id, [k[1] for k in keys]),
        )
    wanted = set(keys)
    return {key: _row(r) for r in conn.execute(stmt) if (key := (r.res_type, r.res_id)) in wanted}


def _resource_row(s: StoredResource) -> dict:
    return {
        "res_type": s.res_type,
        "res_id": s.res_id,
        "version": s.version,
        "last_updated": s.last_updated,
        "deleted": s.deleted,
        "content_hash": s.content_hash,
        "content": s.content,
    }


def _explicit_keys(bundles: list[dict]) -> list[tuple[str, str]]:
    """(type, id) of the entries whose request URL names one resource ("Type/id")."""
    keys = []
    for bundle in bundles:
        for entry in bundle.get("entry") or ():
            url = ((entry.get("request") or {}).get("url") or "") if isinstance(entry, dict) else ""
            parts = url.split("?", 1)[0].split("/")
            if len(parts) == 2 and parts[0] and parts[1]:
                keys.append((parts[0], parts[1]))
    return keys


def _update_resources(conn: Connection, pendings: list[_Pending]) -> None:
    """Write new current versions, but only where the row is still at the version we read.

    Reads take no locks (an unchanged re-sent resource never blocks anyone); a concurrent writer
    that got there first makes the version check fail, and the unit of work is retried."""
    if conn.dialect.name != "postgresql":
        # SQLite writers are serialized by BEGIN IMMEDIATE, so what we read is still current.
        conn.execute(
            update(resource)
            .where(resource.c.rid == bindparam("b_rid"))
            .values(
                version=bindparam("b_version"),
                last_updated=bindparam("b_last_updated"),
                deleted=bindparam("b_deleted"),
                content_hash=bindparam("b_hash"),
                content=bindparam("b_content"),
            ),
            [
                {
                    "b_rid": p.final.rid,
                    "b_version": p.final.version,
                    "b_last_updated": p.final.last_updated,
                    "b_deleted": p.final.deleted,
                    "b_hash": p.final.content_hash,
                    "b_content": p.final.content,
                }
                for p in pendings
            ],
        )
        return
    params = [
        [p.final.rid for p in pendings],
        [p.base.version for p in pendings],
        [p.final.version for p in pendings],
        [p.final.last_updated for p in pendings],
        [p.final.deleted for p in pendings],
        [p.final.content_hash for p in pendings],
        [p.final.content for p in pendings],
    ]
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(_UPDATE_CURRENT, params, binary=True)  # binary: JSON bytes are not escaped
    if cursor.rowcount != len(pendings):
        raise WriteConflict(
            f"{len(pendings) - cursor.rowcount} resource(s) were changed by a concurrent writer"
        )


# Arrays keep the statement text constant whatever the batch size (psycopg parses each new text).
_UPDATE_CURRENT = (
    "UPDATE resource AS r SET version = v.version, last_updated = v.ts, deleted = v.deleted, "
    "content_hash = v.hash, content = v.content "
    "FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::bigint[], %s::boolean[], %s::text[], "
    "%s::bytea[]) AS v(rid, expected, version, ts, deleted, hash, content) "
    "WHERE r.rid = v.rid AND r.version = v.expected"
)


def _insert_resources(conn: Connection, rows: list[dict]) -> dict[tuple[str, str], int]:
    """Insert new current-version rows; returns the rid of each (type, id) inserted.

    On PostgreSQL a row another writer created since our read is skipped (ON CONFLICT DO NOTHING,
    which waits for that writer to commit) instead of aborting the transaction, and left out of the
    result: the caller decides, before any history or index work is spent, whether that is a no-op or
    a conflict to retry."""
    if conn.dialect.name != "postgresql":
        # SQLite writers are serialized by BEGIN IMMEDIATE: nobody can have created these since.
        result = conn.execute(insert(resource).returning(resource.c.rid, sort_by_parameter_order=True), rows)
        return {
            (r["res_type"], r["res_id"]): rid for r, rid in zip(rows, result.scalars().all(), strict=True)
        }
    # Fast path: rids from the sequence and one COPY (psycopg formats COPY rows in C). A concurrent
    # create of one of these ids makes the COPY fail; the savepoint keeps our transaction alive.
    rids = list(conn.execute(_NEXT_RIDS, {"n": len(rows)}).scalars().all())
    try:
        with conn.begin_nested():
            copy_rows(
                conn, resource, [(rid, *(row[n] for n in _INSERT_COLUMNS)) for rid, row in zip(rids, rows)]
            )
        return {(row["res_type"], row["res_id"]): rid for rid, row in zip(rids, rows)}
    except psycopg.errors.UniqueViolation:
        pass
    params = [[row[name] for row in rows] for name in _INSERT_COLUMNS]
    cursor = conn.connection.driver_connection.cursor()
    # Binary parameters: the JSON travels as raw bytes (text format would escape every byte).
    cursor.execute(_INSERT_NEW, params, binary=True)
    return {(t, i): rid for rid, t, i in cursor.fetchall()}


_NEXT_RIDS = text("SELECT nextval(pg_get_serial_sequence('resource', 'rid')) FROM generate_series(1, :n)")


_HISTORY_COLUMNS = ("rid", "res_type", "res_id", "version", "last_updated", "deleted", "method", "content")
_INSERT_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "content_hash", "content")
# After a unique violation: a concurrent create of the same (type, id) skips the row instead of
# failing. Arrays keep the statement text constant whatever the batch size.
_INSERT_NEW = (
    "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, content_hash, content) "
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::integer[], %s::bigint[], %s::boolean[], "
    "%s::varchar[], %s::bytea[]) "
    "ON CONFLICT (res_type, res_id) DO NOTHING RETURNING rid, res_type, res_id"
)


# COPY runs on the raw psycopg connection, so its errors arrive unwrapped by SQLAlchemy.
_CONFLICT = (
    IntegrityError,
    psycopg.errors.IntegrityError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)
_DB_ERRORS = (DBAPIError, psycopg.Error)


def _is_conflict(exc: Exception) -> bool:
    """A concurrent writer got in the way (worth running the unit of work again), whether the error
    came raw from psycopg (COPY, binary statements) or wrapped by SQLAlchemy."""
    return isinstance(exc, (*_CONFLICT, WriteConflict)) or isinstance(getattr(exc, "orig", None), _CONFLICT)


_GROUP_RETRIES = 4


def copy_rows(conn: Connection, table, rows: list[tuple], columns: tuple[str, ...] | None = None) -> None:
    """Insert rows given as tuples, in the table's column order or that of `columns`: COPY on
    PostgreSQL (psycopg formats the rows in C), one executemany on SQLite."""
    if not rows:
        return
    names = list(columns or (c.name for c in table.columns))
    if conn.dialect.name != "postgresql":
        marks = ", ".join("?" * len(names))
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({marks})', rows)
        return
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({", ".join(names)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Store:
    """Resource storage over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, indexer: Indexer | None = None, search: SearchEngine | None = None):
        self.engine = engine
        self.indexer = indexer or Indexer()
        self.search = search or SearchEngine()
        # Counters for /metrics: how often concurrent writers made a group run again or split.
        self.group_retries = 0
        self.group_splits = 0

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """Open a write transaction; commit on success, roll back on any exception."""
        with self.engine.connect().execution_options(write=True) as conn:
            with conn.begin():
                tx = Tx(self, conn)
                yield tx
                tx.flush()

    def run(self, work, retries: int = 8):
        """Run `work(tx)` in a write transaction, retrying (with jittered backoff) when a concurrent
        writer changed or created the same resource between our read and our write."""
        for attempt in range(retries):
            try:
                with self.begin() as tx:
                    return work(tx)
            except (*_DB_ERRORS, WriteConflict) as exc:
                if not _is_conflict(exc):
                    raise
                if attempt == retries - 1:
                    raise FhirError.conflict(
                        f"concurrent write conflict, retry the request ({type(exc).__name__})"
                    )
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------------
    def read(self, res_type: str, res_id: str) -> StoredResource | None:
        """Current version (or delete marker) of one resource."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_COLS).where(and_(resource.c.res_type == res_type, resource.c.res_id == res_id))
            ).first()
        return _row(row) if row else None

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version."""
        h = resource_history.c
        with self.engine.connect() as conn:
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
    ) -> list[tuple[StoredResource, str, int]]:
        """Versions newest first as (version, method, history-row id); `after` continues a page."""
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
            (
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

    def transactions(
        self, bundles: list[dict], validate: bool = True, written: set[tuple[str, str]] | None = None
    ) -> list[dict | FhirError]:
        """Apply several transaction Bundles in ONE database transaction (group commit).

        Each Bundle stays atomic on its own: one that fails is dropped (its FhirError is returned in
        its place) and the others commit together, with one flush and one commit for all of them. A
        concurrent writer of the same resources makes the whole group run again; if the database
        itself refuses the group, each Bundle is retried in its own transaction. `written`, when
        given, collects the (type, id) of every resource that got a new version (unchanged re-sends
        are not in it)."""
        from fhir_server.bundles import apply_transaction

        for attempt in range(_GROUP_RETRIES):
            results: list[dict | FhirError] = []
            try:
                with self.begin() as tx:
                    tx.prefetch(_explicit_keys(bundles))  # one query for the whole group, not one per Bundle
                    for bundle in bundles:
                        try:
                            results.append(apply_transaction(Tx(self, tx.conn, parent=tx), bundle, validate))
                        except FhirError as exc:
                            results.append(exc)
                if written is not None:
                    written.update(tx.written)
                return results
            except (*_DB_ERRORS, WriteConflict) as exc:
                if not _is_conflict(exc):
                    break  # something in one Bundle the database refuses: find it by going one by one
                # Another writer created or changed a resource of this group since we read it: the
                # group is redone (it will see their version), not split, which would cost a commit per
                # Bundle. Creates of shared resources (facilities, practitioners, patients seen by
                # several hospitals) make this common when hospitals push at the same time.
                self.group_retries += 1
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        self.group_splits += 1
        outcomes = [self._one(bundle, validate) for bundle in bundles]
        if written is not None:  # one-by-one writes report no keys: count every written bundle's
            written.update(
                (e["resource"]["resourceType"], e["resource"]["id"])
                for b, o in zip(bundles, outcomes)
                if isinstance(o, dict)
                for e in b.get("entry", [])
                if (e.get("resource") or {}).get("id")
            )
        return outcomes

    def _one(self, bundle: dict, validate: bool) -> dict | FhirError:
        try:
            return self.transaction(bundle, validate)
        except FhirError as exc:
            return exc

    # -- bundles (adapters write whole transactions in one call) ------------------------------------
    def transaction(self, bundle: dict, validate: bool = True) -> dict:
        """Process a FHIR transaction Bundle atomically; returns the transaction-response Bundle.

        `validate=False` skips the R4B structural validation for trusted producers (adapter output
        whose mappings are validated by their tests); shape, ids and references are still checked.
        """
        from fhir_server.bundles import process_bundle

        return process_bundle(self, bundle, structural=validate)

    def batch(self, bundle: dict, validate: bool = True) -> dict:
        """Process a FHIR batch Bundle, each entry independently."""
        from fhir_server.bundles import process_bundle

        return process_bundle(self, bundle, structural=validate)


def open_store(url: str, pool_size: int = 4, create: bool = True) -> Store:
    """Open (and by default create/migrate) the store at a database URL."""
    engine = make_engine(url, pool_size=pool_size)
    if create:
        create_schema(engine)
    return Store(engine, Indexer(), SearchEngine())
