"""Engine creation for SQLite (file, WAL) and PostgreSQL (psycopg 3), and small SQL helpers."""

from __future__ import annotations

import weakref
from typing import Protocol

from sqlalchemy import ARRAY, Engine, String, any_, bindparam, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine


class SqlUnit(Protocol):
    """A unit of work of the SQL store, as repositories see it: an open connection in a transaction."""

    conn: Connection


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain postgresql:// URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def among(conn: Connection, column, values: list, item_type: TypeEngine | None = None) -> ColumnElement:
    """`column IN values`; on PostgreSQL `column = ANY(array)`, one SQL text whatever the count
    (psycopg parses every new text, and an expanded IN list makes one per batch size)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(item_type or String())))
    return column.in_(values)


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, pool_size: int = 4) -> Engine:
    """Create an engine tuned for this project's access pattern."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every checkout (a third of a read). Connections are
    # recycled before typical idle timeouts instead, and a dropped one fails just that request.
    # hide_parameters: SQL errors must not carry patient values into logs or error texts.
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size * 2, pool_recycle=1800, hide_parameters=True
    )
    _SERVER_ENGINES.add(engine)
    return engine


# Every PostgreSQL engine of the process, so idle pooled connections can be handed back to the server
# (a process that opens many stores, such as a test run, must not sit on the server's connection slots).
_SERVER_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def release_idle_connections() -> None:
    """Close the idle pooled connections of every PostgreSQL engine of this process (engines stay usable)."""
    for engine in list(_SERVER_ENGINES):
        engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers; explicit BEGIN IMMEDIATE for writers so updates serialize."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # pysqlite's implicit transactions hide BEGIN from us; take control of it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")
