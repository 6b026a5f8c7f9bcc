"""Engine creation for SQLite (file, WAL) and PostgreSQL (psycopg 3), and schema creation."""

from __future__ import annotations

from sqlalchemy import ARRAY, Engine, MetaData, String, any_, bindparam, create_engine, event, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine

SCHEMA_VERSION = 1


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
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size * 2, pool_recycle=1800, hide_parameters=True
    )


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


def store_metadata() -> MetaData:
    """The metadata of every table the FHIR store owns (resources, index, identity)."""
    # Imported here so each table module registers its tables on the shared metadata first.
    from fhir_server.storage.sql import identity, index_tables  # noqa: F401
    from fhir_server.storage.sql.schema import metadata

    return metadata


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create missing tables and indexes of one metadata (idempotent; add-only migrations)."""
    metadata.create_all(engine)
    # create_all skips existing tables entirely: indexes added since a database was created are
    # created here, so an index-only schema change needs no manual step.
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)


def create_schema(engine: Engine) -> None:
    """Create the store's missing tables and record the schema version (idempotent)."""
    from fhir_server.storage.sql.schema import PARAMS_COMPONENT, schema_version

    create_tables(engine, store_metadata())
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        versions = dict(conn.execute(select(schema_version.c.component, schema_version.c.version)).all())
        have = versions.get("core")
        if have is None:
            conn.execute(insert(schema_version).values(component="core", version=SCHEMA_VERSION))
        elif have > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {have} is newer than this Lienthong ({SCHEMA_VERSION})"
            )
        if PARAMS_COMPONENT not in versions:
            conn.execute(insert(schema_version).values(component=PARAMS_COMPONENT, version=0))
