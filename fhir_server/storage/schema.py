"""Table definitions shared by storage, search indexing and the ingest pipeline.

One `metadata` holds every table so `create_schema` builds them all on SQLite and PostgreSQL.
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
    Text,
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

# Raw inbound payloads, archived before any parsing (HTTP, MLLP, file drop).
inbox = Table(
    "inbox",
    metadata,
    Column("inbox_id", RID, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("source", String(255), nullable=False),  # e.g. "http", "mllp:10.0.0.5", "file:/drop/a.xml"
    Column("channel", String(32), nullable=False),  # qd130 | hl7v2 | fhir | ...
    Column("received_at", BigInteger, nullable=False),
    Column("content_type", String(128), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(32), nullable=False, default="received"),  # received|processed|partial|failed
    Column("summary", Text, nullable=True),  # JSON: counts, per-record outcome
)
Index("ix_inbox_sha256", inbox.c.sha256)

# Records that could not be parsed, mapped or stored; replayable after a mapping fix.
dead_letter = Table(
    "dead_letter",
    metadata,
    Column("dl_id", RID, primary_key=True, autoincrement=True),
    Column("inbox_id", BigInteger, nullable=True),
    Column("channel", String(32), nullable=False),
    Column("record_key", String(255), nullable=True),  # e.g. MA_LK or MSH-10
    Column("location", String(255), nullable=True),  # e.g. "XML2/row 3/DON_GIA"
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=True),  # the record (or whole message) to replay
    Column("created_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open | replayed | failed
    Column("replayed_at", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
)
Index("ix_dead_letter_status", dead_letter.c.status)

# Message-level idempotency (e.g. HL7 MSH-10, file sha256 per source): the stored response is re-sent.
processed_message = Table(
    "processed_message",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("message_key", String(255), primary_key=True),
    Column("processed_at", BigInteger, nullable=False),
    Column("response", LargeBinary, nullable=True),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)
