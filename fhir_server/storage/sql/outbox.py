"""The outbox: (type, id) of every resource a committed unit of work wrote, for a central hub to pull.

Rows are inserted by an on_flush listener INSIDE the writing transaction (so a change is in the outbox
if and only if it committed) and deleted when the hub acknowledges what it copied. Rows of one
resource are ordered by `seq`, and a resource cannot be written by two transactions at once, so
"delete this resource's rows up to the seq you were given" never drops a later change.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
)

from fhir_server.storage.sql.db import SqlUnit
from fhir_server.storage.sql.schema import RID, metadata
from fhir_server.timeutil import now_us

outbox = Table(
    "outbox",
    metadata,
    Column("seq", RID, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("at", BigInteger, nullable=False),
)
Index("ix_outbox_key", outbox.c.res_type, outbox.c.res_id)


class OutboxRepository:
    """The outbox table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def queue(self, unit: SqlUnit, keys: list[tuple[str, str]]) -> None:
        """Record written resources inside the unit of work that wrote them."""
        if keys:
            now = now_us()
            unit.conn.execute(insert(outbox), [{"res_type": t, "res_id": i, "at": now} for t, i in keys])

    def pending(self, limit: int = 500) -> list[tuple[str, str, int]]:
        """Changed resources, oldest change first: (type, id, highest seq) each once."""
        c = outbox.c
        stmt = (
            select(c.res_type, c.res_id, func.max(c.seq))
            .group_by(c.res_type, c.res_id)
            .order_by(func.min(c.seq))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(t, i, int(s)) for t, i, s in conn.execute(stmt).all()]

    def ack(self, items: list[tuple[str, str, int]]) -> int:
        """Forget the changes the hub has copied: each resource's rows up to the given seq."""
        if not items:
            return 0
        c = outbox.c
        stmt = delete(outbox).where(
            and_(
                c.res_type == bindparam("b_type"), c.res_id == bindparam("b_id"), c.seq <= bindparam("b_seq")
            )
        )
        with self.engine.begin() as conn:
            res = conn.execute(stmt, [{"b_type": t, "b_id": i, "b_seq": s} for t, i, s in items])
            return int(res.rowcount or 0)

    def count(self) -> int:
        """Rows waiting."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
