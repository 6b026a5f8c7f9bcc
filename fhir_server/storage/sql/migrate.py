"""Schema creation and versioning: every table the store owns, created and upgraded by the app (add-only)."""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, insert, inspect, select

from fhir_server.storage.sql import (
    auth,
    authcode,
    export,
    identity,
    index_tables,
    outbox,
    reports,
    throttle,
    users,
)
from fhir_server.storage.sql.schema import PARAMS_COMPONENT, metadata, schema_version

SCHEMA_VERSION = 1


def store_metadata() -> MetaData:
    """The metadata of every table the FHIR store owns (resources, index, identity)."""
    assert identity.identity_link.metadata is metadata and index_tables.sp_token.metadata is metadata
    assert outbox.outbox.metadata is metadata
    assert auth.auth_client.metadata is metadata
    assert users.app_user.metadata is metadata  # issue 13: /ui accounts
    assert authcode.auth_code.metadata is metadata  # issue 13: SMART App Launch
    assert export.export_job.metadata is metadata
    assert reports.report_visit.metadata is metadata
    assert throttle.login_throttle.metadata is metadata  # issue 13: sign-in lockout
    return metadata


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create missing tables and indexes of one metadata (idempotent; add-only migrations)."""
    metadata.create_all(engine)
    # create_all skips existing tables entirely: indexes added since a database was created are
    # created here, so an index-only schema change needs no manual step.
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add nullable columns declared since a table was created (add-only); the `table.column`s added."""
    inspector = inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have or not column.nullable:
                continue  # a NOT NULL column needs a backfill: a versioned migration, not this
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
                )
            added.append(f"{table.name}.{column.name}")
    return added


def create_schema(engine: Engine) -> None:
    """Create the store's missing tables and record the schema version (idempotent)."""
    create_tables(engine, store_metadata())
    add_missing_columns(engine, store_metadata())
    with engine.begin() as conn:
        for name in index_tables.OBSOLETE_INDEXES:  # constant names (index_tables.py)
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
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
