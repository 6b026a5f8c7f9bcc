"""Inbox (raw payload archive) and dead-letter rows: small SQLAlchemy Core helpers on store.engine."""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy import Engine, bindparam, func, insert, select, update

from fhir_server.storage.schema import dead_letter, inbox
from fhir_server.timeutil import now_us


def _plain(row) -> dict:
    """A result mapping as a plain dict with str keys (SQLAlchemy keys are str subclasses)."""
    return {str(k): v for k, v in row.items()}


def archive(
    engine: Engine,
    payload: bytes,
    *,
    source: str,
    channel: str,
    content_type: str | None = None,
    summary: dict | None = None,
) -> int:
    """Store the raw payload in its own committed transaction and return its inbox id."""
    return archive_many(
        engine,
        [
            {
                "payload": payload,
                "source": source,
                "channel": channel,
                "content_type": content_type,
                "summary": summary,
            }
        ],
    )[0]


def archive_many(engine: Engine, items: list[dict]) -> list[int]:
    """Archive several raw payloads in one committed transaction (keys as for `archive`); returns ids."""
    rows = [
        {
            "sha256": hashlib.sha256(i["payload"]).hexdigest(),
            "source": i["source"][:255],
            "channel": i["channel"][:32],
            "received_at": now_us(),
            "content_type": (i.get("content_type") or None) and i["content_type"][:128],
            "payload": i["payload"],
            "status": "received",
            "summary": orjson.dumps(i["summary"]).decode() if i.get("summary") is not None else None,
        }
        for i in items
    ]
    if not rows:
        return []
    with engine.begin() as conn:
        res = conn.execute(insert(inbox).returning(inbox.c.inbox_id, sort_by_parameter_order=True), rows)
        return [int(r) for r in res.scalars().all()]


def mark_many(engine: Engine, marks: list[tuple[int, str, dict | None]]) -> None:
    """Set status and summary of several inbox rows in one transaction."""
    if not marks:
        return
    with_summary = [
        {"b_id": i, "b_status": st, "b_summary": orjson.dumps(sm).decode()}
        for i, st, sm in marks
        if sm is not None
    ]
    status_only = [{"b_id": i, "b_status": st} for i, st, sm in marks if sm is None]
    with engine.begin() as conn:
        if with_summary:
            conn.execute(
                update(inbox)
                .where(inbox.c.inbox_id == bindparam("b_id"))
                .values(status=bindparam("b_status"), summary=bindparam("b_summary")),
                with_summary,
            )
        if status_only:
            conn.execute(
                update(inbox)
                .where(inbox.c.inbox_id == bindparam("b_id"))
                .values(status=bindparam("b_status")),
                status_only,
            )


def mark(engine: Engine, inbox_id: int, status: str, summary: dict | None = None) -> None:
    """Set an inbox row's status (received|processed|partial|failed) and outcome summary."""
    values: dict = {"status": status}
    if summary is not None:
        values["summary"] = orjson.dumps(summary).decode()
    with engine.begin() as conn:
        conn.execute(update(inbox).where(inbox.c.inbox_id == inbox_id).values(**values))


def get_inbox(engine: Engine, inbox_id: int) -> dict | None:
    """One inbox row as a dict (summary parsed), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(inbox).where(inbox.c.inbox_id == inbox_id)).mappings().first()
    if row is None:
        return None
    out = _plain(row)
    out["summary"] = orjson.loads(out["summary"]) if out.get("summary") else None
    return out


def list_inbox(engine: Engine, limit: int = 100) -> list[dict]:
    """Newest inbox rows without payloads."""
    cols = [c for c in inbox.c if c.name != "payload"]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(inbox.c.inbox_id.desc()).limit(limit)).mappings().all()
    return [_plain(r) for r in rows]


def add_dead_letter(
    engine: Engine,
    *,
    channel: str,
    reason: str,
    inbox_id: int | None = None,
    record_key: str | None = None,
    location: str | None = None,
    payload: bytes | None = None,
) -> int:
    """Record a failed record (reason, location, replayable payload); returns the dead-letter id."""
    row = {
        "inbox_id": inbox_id,
        "channel": channel[:32],
        "record_key": record_key and record_key[:255],
        "location": location and location[:255],
        "reason": reason,
        "payload": payload,
        "created_at": now_us(),
        "status": "open",
        "attempts": 0,
    }
    with engine.begin() as conn:
        res = conn.execute(insert(dead_letter).values(**row).returning(dead_letter.c.dl_id))
        return int(res.scalar_one())


def list_dead_letters(
    engine: Engine, status: str | None = "open", limit: int = 100, offset: int = 0, channel: str | None = None
) -> list[dict]:
    """Dead letters (without payload bytes), oldest first."""
    cols = [c for c in dead_letter.c if c.name != "payload"]
    stmt = select(*cols).order_by(dead_letter.c.dl_id).limit(limit).offset(offset)
    if status:
        stmt = stmt.where(dead_letter.c.status == status)
    if channel:
        stmt = stmt.where(dead_letter.c.channel == channel)
    with engine.connect() as conn:
        return [_plain(r) for r in conn.execute(stmt).mappings().all()]


def count_dead_letters(engine: Engine, status: str | None = "open") -> int:
    """Number of dead letters in a status (all when None)."""
    stmt = select(func.count()).select_from(dead_letter)
    if status:
        stmt = stmt.where(dead_letter.c.status == status)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def get_dead_letter(engine: Engine, dl_id: int) -> dict | None:
    """One dead letter including its payload, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(dead_letter).where(dead_letter.c.dl_id == dl_id)).mappings().first()
    return _plain(row) if row else None


def mark_dead_letter(engine: Engine, dl_id: int, status: str, reason: str | None = None) -> None:
    """After a replay attempt: set status (replayed|failed|open), bump attempts, keep the latest reason."""
    values: dict = {"status": status, "replayed_at": now_us(), "attempts": dead_letter.c.attempts + 1}
    if reason:
        values["reason"] = reason
    with engine.begin() as conn:
        conn.execute(update(dead_letter).where(dead_letter.c.dl_id == dl_id).values(**values))
