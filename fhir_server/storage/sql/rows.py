"""Row-level SQL of the resource tables: bulk reads of current rows, version-checked updates, COPY inserts.

Everything here takes a SQLAlchemy `Connection` inside an open transaction; the unit of work (`tx.py`)
decides what to write, these functions decide how to get it to the database in few round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Table, bindparam, insert, select, text, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from fhir_server.storage.base import StoredResource, WriteConflict
from fhir_server.storage.sql.db import among
from fhir_server.storage.sql.schema import resource


@dataclass
class Pending:
    """The state a Tx will leave one resource in, plus the history rows leading there."""

    base: StoredResource | None  # what the database had when the Tx first touched it
    final: StoredResource
    body: dict | None
    history: list[tuple[StoredResource, str]] = field(default_factory=list)


COLS = (
    resource.c.rid,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.content,
    resource.c.content_hash,
)


def to_stored(r) -> StoredResource:
    return StoredResource(
        r.rid, r.res_type, r.res_id, r.version, r.last_updated, bool(r.deleted), r.content, r.content_hash
    )


def current_rows(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
    """Current rows of (type, id) keys in one query (no locks: see _update_resources)."""
    if conn.dialect.name != "postgresql":
        stmt = select(*COLS).where(tuple_(resource.c.res_type, resource.c.res_id).in_(keys))
    else:
        # Two array parameters keep the SQL text constant (a 500-tuple IN list cost more than the
        # query); the few over-matches (a type of one key with the id of another) are dropped.
        stmt = select(*COLS).where(
            among(conn, resource.c.res_type, sorted({k[0] for k in keys})),
            among(conn, resource.c.res_id, [k[1] for k in keys]),
        )
    wanted = set(keys)
    return {key: to_stored(r) for r in conn.execute(stmt) if (key := (r.res_type, r.res_id)) in wanted}


def resource_row(s: StoredResource) -> dict:
    return {
        "res_type": s.res_type,
        "res_id": s.res_id,
        "version": s.version,
        "last_updated": s.last_updated,
        "deleted": s.deleted,
        "content_hash": s.content_hash,
        "content": s.content,
    }


def update_resources(conn: Connection, pendings: list[Pending]) -> None:
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
        [p.base.version if p.base else 0 for p in pendings],
        [p.final.version for p in pendings],
        [p.final.last_updated for p in pendings],
        [p.final.deleted for p in pendings],
        [p.final.content_hash for p in pendings],
        [p.final.content for p in pendings],
    ]
    cursor = _raw(conn).cursor()
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


def insert_resources(conn: Connection, rows: list[dict]) -> dict[tuple[str, str], int]:
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
    cursor = _raw(conn).cursor()
    # Binary parameters: the JSON travels as raw bytes (text format would escape every byte).
    cursor.execute(_INSERT_NEW, params, binary=True)
    return {(t, i): rid for rid, t, i in cursor.fetchall()}


_NEXT_RIDS = text("SELECT nextval(pg_get_serial_sequence('resource', 'rid')) FROM generate_series(1, :n)")


HISTORY_COLUMNS = ("rid", "res_type", "res_id", "version", "last_updated", "deleted", "method", "content")
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
DB_ERRORS = (DBAPIError, psycopg.Error)


def is_conflict(exc: Exception) -> bool:
    """A concurrent writer got in the way (worth running the unit of work again), whether the error
    came raw from psycopg (COPY, binary statements) or wrapped by SQLAlchemy."""
    return isinstance(exc, (*_CONFLICT, WriteConflict)) or isinstance(getattr(exc, "orig", None), _CONFLICT)


def copy_rows(
    conn: Connection, table: Table, rows: list[tuple], columns: tuple[str, ...] | None = None
) -> None:
    """Insert rows given as tuples, in the table's column order or that of `columns`: COPY on
    PostgreSQL (psycopg formats the rows in C), one executemany on SQLite."""
    if not rows:
        return
    names = list(columns or (c.name for c in table.columns))
    if conn.dialect.name != "postgresql":
        marks = ", ".join("?" * len(names))
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({marks})', rows)
        return
    cursor = _raw(conn).cursor()
    with cursor.copy(f'COPY "{table.name}" ({", ".join(names)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def _raw(conn: Connection) -> psycopg.Connection:
    """The psycopg connection under a SQLAlchemy one (COPY and binary array statements need it)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


def chunks(items: list, size: int) -> Iterator[list]:
    """Successive slices of at most `size` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
