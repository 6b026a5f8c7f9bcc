"""Tables of the FHIR store: current resources, every version, and the schema/registry version rows.

One `metadata` holds the store's tables (these, the index tables and the identity tables) so
`create_schema` builds them all on SQLite and PostgreSQL.
Resource JSON is kept as bytes (orjson output), not JSONB: the stored bytes are served as-is,
keeping the client's key order, and search never queries the JSON (it uses index tables).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# Surrogate key type: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
RID = BigInteger().with_variant(Integer(), "sqlite")

# Current version of every resource (also the anchor of the search index rows via `rid`).
resource = Table(
    "resource",
    metadata,
    Column("rid", RID, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),  # microseconds since epoch, UTC
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content_hash", String(64), nullable=False),
    Column("content", LargeBinary, nullable=True),  # NULL when deleted
    UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
)
Index("ix_resource_type_updated", resource.c.res_type, resource.c.last_updated)

# Every version ever written (including the current one and delete markers).
resource_history = Table(
    "resource_history",
    metadata,
    Column("hid", RID, primary_key=True, autoincrement=True),
    Column("rid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("method", String(8), nullable=False),  # POST | PUT | PATCH | DELETE
    Column("content", LargeBinary, nullable=True),
    UniqueConstraint("res_type", "res_id", "version", name="uq_history_type_id_version"),
)
Index("ix_history_updated", resource_history.c.last_updated)
Index("ix_history_type_updated", resource_history.c.res_type, resource_history.c.last_updated)
# Instance history: without it SQLite walks the type's whole history in time order to find one id.
Index(
    "ix_history_instance",
    resource_history.c.res_type,
    resource_history.c.res_id,
    resource_history.c.last_updated,
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)
# Row of `schema_version` whose version counts committed changes to SearchParameter resources: every
# process compares it with the one its registry was built from (see SqlStore.refresh_registry).
PARAMS_COMPONENT = "search-params"
