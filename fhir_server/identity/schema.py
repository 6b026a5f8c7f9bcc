"""Tables of the identity service, on the shared metadata (imported by create_schema before create_all).

identity_link   one row per (link set, patient) membership; the link set is a Lienthong-owned Person.
identity_review pairs the matcher was unsure about, and reviewer / unlink decisions ("do not link").
identity_key    blocking keys per Patient, so linking one new record finds candidates with an index.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text, UniqueConstraint

from fhir_server.storage.schema import RID, metadata

identity_link = Table(
    "identity_link",
    metadata,
    Column("link_id", RID, primary_key=True, autoincrement=True),
    Column("person_id", String(64), nullable=False),  # id of the Person resource (link set)
    Column("patient_id", String(64), nullable=False),
    Column("method", String(16), nullable=False),  # deterministic | probabilistic | manual
    Column("score", Float, nullable=True),
    Column("status", String(8), nullable=False),  # active | undone
    Column("matched_to", String(64), nullable=True),  # the patient whose comparison brought this one in
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_identity_link_patient", identity_link.c.patient_id, identity_link.c.status)
Index("ix_identity_link_person", identity_link.c.person_id, identity_link.c.status)

identity_review = Table(
    "identity_review",
    metadata,
    Column("review_id", RID, primary_key=True, autoincrement=True),
    Column("patient_a", String(64), nullable=False),  # patient_a < patient_b
    Column("patient_b", String(64), nullable=False),
    Column("score", Float, nullable=True),
    Column("features", Text, nullable=True),  # JSON: field -> agreement level
    Column("reason", Text, nullable=True),
    Column("status", String(10), nullable=False),  # pending | accepted | rejected
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(128), nullable=True),
    UniqueConstraint("patient_a", "patient_b", name="uq_identity_review_pair"),
)
Index("ix_identity_review_status", identity_review.c.status, identity_review.c.review_id)

identity_key = Table(
    "identity_key",
    metadata,
    Column("block_key", String(255), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
)
Index("ix_identity_key_patient", identity_key.c.patient_id)
