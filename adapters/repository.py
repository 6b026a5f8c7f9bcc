"""The ingest side's own tables and their SQL: raw payload archive, dead letters, processed messages.

These are pipeline tables, not FHIR data: the FHIR store neither reads nor knows them. They are typed
SQLModel tables (used as Core tables on the write path: one multi-row INSERT per batch, no ORM objects
per row) created on first use next to the FHIR store's tables, in the same database.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    Text,
    bindparam,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from fhir_server.timeutil import now_us

# Surrogate key type: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
_RID = BigInteger().with_variant(Integer(), "sqlite")


class Inbox(SQLModel, table=True):
    """A raw inbound payload (HTTP, MLLP, file drop), archived before any parsing."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_sha256", "sha256"), Index("ix_inbox_status", "status"))

    inbox_id: int | None = Field(default=None, sa_column=Column(_RID, primary_key=True, autoincrement=True))
    sha256: str = Field(max_length=64)
    source: str = Field(max_length=255)  # e.g. "http:10.0.0.5", "mllp:10.0.0.5", "file:/drop/a.xml"
    channel: str = Field(max_length=32)  # qd130 | hl7v2 | ...
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    content_type: str | None = Field(default=None, max_length=128)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="received", max_length=32)  # received|processed|partial|failed|duplicate
    summary: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON outcome


class DeadLetter(SQLModel, table=True):
    """A record that could not be parsed, mapped or stored; replayable after a mapping fix."""

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_status", "status"),)

    dl_id: int | None = Field(default=None, sa_column=Column(_RID, primary_key=True, autoincrement=True))
    inbox_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    channel: str = Field(max_length=32)
    record_key: str | None = Field(default=None, max_length=255)  # e.g. MA_LK or MSH-10
    location: str | None = Field(default=None, max_length=255)  # e.g. "XML2/row 3/DON_GIA"
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default="open", max_length=16)  # open | replayed | failed
    replayed_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    attempts: int = 0
    # JSON list of every error (location, table, stt, field, severity, reason, message id + params):
    # shown in the reader's language by `lienthong dead-letters`; NULL on rows written before it existed.
    errors: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ProcessedMessage(SQLModel, table=True):
    """Message-level idempotency (HL7 MSH-10 per sender): the stored response is re-sent to re-sends."""

    __tablename__ = "processed_message"

    channel: str = Field(max_length=32, primary_key=True)
    message_key: str = Field(max_length=255, primary_key=True)
    processed_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    response: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


TABLES = [Inbox.__table__, DeadLetter.__table__, ProcessedMessage.__table__]  # type: ignore[attr-defined]
inbox, dead_letter, processed_message = TABLES


def _plain(row) -> dict:
    """A result mapping as a plain dict with str keys (SQLAlchemy keys are str subclasses)."""
    return {str(k): v for k, v in row.items()}


class ClosedElsewhere(Exception):
    """Inbox rows a worker meant to close were closed by another delivery of the same payloads."""

    def __init__(self, ids: set[int]):
        super().__init__(f"{len(ids)} inbox row(s) closed by another delivery")
        self.ids = ids


def _text(value: str | None) -> str | None:
    """Text as PostgreSQL can store it: a NUL (legal in an HL7 v2 MSH-10, a record key or a reason
    quoting the input) becomes U+FFFD. Written raw, it failed the whole insert, so the record had no
    dead letter and its sender got AR "retry later" forever (found by the parser fuzz run)."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def _dead_letter_row(row) -> dict:
    """A dead-letter row as a dict, its errors JSON parsed (an empty list for rows without it)."""
    out = _plain(row)
    out["errors"] = orjson.loads(out["errors"]) if out.get("errors") else []
    return out


class IngestRepository:
    """Archive, dead-letter and idempotency rows of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        SQLModel.metadata.create_all(engine, tables=TABLES)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added after a database was created (create_all only creates missing tables)."""
        have = {c["name"] for c in inspect(self.engine).get_columns("dead_letter")}
        if "errors" not in have:
            with self.engine.begin() as conn:
                conn.execute(text("ALTER TABLE dead_letter ADD COLUMN errors TEXT"))

    # -- inbox ------------------------------------------------------------------------------------
    def archive_many(self, items: list[dict]) -> list[int]:
        """Archive raw payloads (dicts: payload, source, channel, content_type, summary) in one committed
        transaction; returns their inbox ids."""
        rows = [
            {
                "sha256": hashlib.sha256(i["payload"]).hexdigest(),
                "source": _text(i["source"][:255]),
                "channel": _text(i["channel"][:32]),
                "received_at": now_us(),
                "content_type": _text((i.get("content_type") or None) and i["content_type"][:128]),
                "payload": i["payload"],
                "status": i.get("status", "received"),
                "summary": orjson.dumps(i["summary"]).decode() if i.get("summary") is not None else None,
            }
            for i in items
        ]
        if not rows:
            return []
        with self.engine.begin() as conn:
            res = conn.execute(insert(inbox).returning(inbox.c.inbox_id, sort_by_parameter_order=True), rows)
            return [int(r) for r in res.scalars().all()]

    def mark_many(self, marks: list[tuple[int, str, dict | None]]) -> None:
        """Set status and summary of several inbox rows in one transaction."""
        if not marks:
            return
        with_summary = [
            {"b_id": i, "b_status": st, "b_summary": orjson.dumps(sm).decode()}
            for i, st, sm in marks
            if sm is not None
        ]
        status_only = [{"b_id": i, "b_status": st} for i, st, sm in marks if sm is None]
        with self.engine.begin() as conn:
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

    # -- broker side (payloads waiting in the stream are "queued") -------------------------------
    def load_inbox(self, ids: list[int]) -> dict[int, dict]:
        """Inbox rows (payload, channel, status, summary parsed) by id; missing ids are absent."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbox).where(inbox.c.inbox_id.in_(sorted(set(ids))))).mappings().all()
        out = {}
        for row in rows:
            d = _plain(row)
            d["summary"] = orjson.loads(d["summary"]) if d.get("summary") else None
            out[int(d["inbox_id"])] = d
        return out

    def claim_stuck(self, statuses: tuple[str, ...], received_before: int, limit: int = 1000) -> list[int]:
        """Turn rows left in `statuses` since before a time (a crash between archive and commit) into
        "queued" rows, so exactly one recoverer closes each (`finish_*` only closes queued rows)."""
        c = inbox.c
        stuck = (
            select(c.inbox_id)
            .where(c.status.in_(statuses), c.received_at < received_before)
            .order_by(c.inbox_id)
            .limit(limit)
        )
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            ids = [int(i) for i in conn.execute(stuck).scalars()]
            if ids:
                conn.execute(
                    update(inbox).where(c.inbox_id.in_(ids), c.status.in_(statuses)).values(status="queued")
                )
        return ids

    def queued_before(self, received_before: int, limit: int = 1000) -> list[dict]:
        """Queued rows archived before a time (microseconds): candidates for publishing again."""
        c = inbox.c
        stmt = (
            select(c.inbox_id, c.channel, c.summary)
            .where(c.status == "queued", c.received_at < received_before)
            .order_by(c.inbox_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings().all()]

    def count_by_status(self) -> dict[str, int]:
        """Number of inbox rows per status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()
        return {str(st): int(n) for st, n in rows}

    def finish_many(
        self, dead_letters: list[dict], marks: list[tuple[int, str, Callable[[list[int]], dict]]]
    ) -> set[int]:
        """Close queued inbox rows in a transaction of their own (see `finish_on`); rows another
        delivery closed first are skipped. Returns the ids this call closed."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return self._finish(conn, dead_letters, marks, strict=False)

    def finish_on(
        self, unit, dead_letters: list[dict], marks: list[tuple[int, str, Callable[[list[int]], dict]]]
    ) -> set[int]:
        """Close queued inbox rows inside a FHIR unit of work (`unit.conn`), atomically with the data it
        writes: their dead letters, then their status and summary. Raises ClosedElsewhere (which rolls
        the unit back) when another delivery closed some of them first, so their data is not applied
        twice. The summary builders get the dead letters' ids (in the order given)."""
        return self._finish(unit.conn, dead_letters, marks, strict=True)

    def _finish(self, conn, dead_letters: list[dict], marks, strict: bool) -> set[int]:
        ids = sorted({m[0] for m in marks})
        if not ids:
            return set()
        stmt = select(inbox.c.inbox_id).where(inbox.c.inbox_id.in_(ids), inbox.c.status == "queued")
        if conn.dialect.name == "postgresql":
            stmt = (
                stmt.with_for_update()
            )  # a concurrent delivery of the same row waits here, then sees it closed
        won = {int(r) for r in conn.execute(stmt).scalars()}
        if strict and len(won) < len(ids):
            raise ClosedElsewhere(set(ids) - won)
        now = now_us()
        positions = [i for i, d in enumerate(dead_letters) if d.get("inbox_id") in won]
        rows = [
            {
                "inbox_id": d.get("inbox_id"),
                "channel": _text(d["channel"][:32]),
                "record_key": _text(d.get("record_key") and d["record_key"][:255]),
                "location": _text(d.get("location") and d["location"][:255]),
                "reason": _text(d["reason"]),
                "payload": d.get("payload"),
                "created_at": now,
                "status": "open",
                "attempts": 0,
                "errors": orjson.dumps(d["errors"]).decode() if d.get("errors") else None,
            }
            for d in (dead_letters[i] for i in positions)
        ]
        dl_ids: list[int] = [0] * len(dead_letters)
        if rows:
            res = conn.execute(
                insert(dead_letter).returning(dead_letter.c.dl_id, sort_by_parameter_order=True), rows
            )
            for pos, dl_id in zip(positions, res.scalars().all()):
                dl_ids[pos] = int(dl_id)
        updates = [
            {"b_id": i, "b_status": st, "b_summary": orjson.dumps(build(dl_ids)).decode()}
            for i, st, build in marks
            if i in won
        ]
        if updates:
            conn.execute(
                update(inbox)
                .where(inbox.c.inbox_id == bindparam("b_id"))
                .values(status=bindparam("b_status"), summary=bindparam("b_summary")),
                updates,
            )
        return won

    def get_inbox(self, inbox_id: int) -> dict | None:
        """One inbox row as a dict (summary parsed), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(inbox).where(inbox.c.inbox_id == inbox_id)).mappings().first()
        if row is None:
            return None
        out = _plain(row)
        out["summary"] = orjson.loads(out["summary"]) if out.get("summary") else None
        return out

    def list_inbox(self, limit: int = 100, status: str | None = None) -> list[dict]:
        """Newest inbox rows without payloads (optionally of one status)."""
        cols = [c for c in inbox.c if c.name != "payload"]
        stmt = select(*cols).order_by(inbox.c.inbox_id.desc()).limit(limit)
        if status:
            stmt = stmt.where(inbox.c.status == status)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings().all()]

    def inbox_sources(self, inbox_ids: list[int]) -> dict[int, str]:
        """Where each inbox payload came from ("file:/drop/a.xml", "http:10.0.0.5"), without payloads."""
        ids = sorted({i for i in inbox_ids if i is not None})
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(inbox.c.inbox_id, inbox.c.source).where(inbox.c.inbox_id.in_(ids))
            ).all()
        return {int(r.inbox_id): r.source for r in rows}

    # -- dead letters -----------------------------------------------------------------------------
    def add_dead_letter(
        self,
        *,
        channel: str,
        reason: str,
        inbox_id: int | None = None,
        record_key: str | None = None,
        location: str | None = None,
        payload: bytes | None = None,
        errors: list[dict] | None = None,
    ) -> int:
        """Record a failed record (reason, location, every error, replayable payload); returns its id."""
        row = DeadLetter(
            inbox_id=inbox_id,
            channel=_text(channel[:32]),
            record_key=_text(record_key and record_key[:255]),
            location=_text(location and location[:255]),
            reason=_text(reason),
            payload=payload,
            created_at=now_us(),
            errors=orjson.dumps(errors).decode() if errors else None,
        )
        values = row.model_dump(exclude={"dl_id"})
        with self.engine.begin() as conn:
            res = conn.execute(insert(dead_letter).values(**values).returning(dead_letter.c.dl_id))
            return int(res.scalar_one())

    def list_dead_letters(
        self, status: str | None = "open", limit: int = 100, offset: int = 0, channel: str | None = None
    ) -> list[dict]:
        """Dead letters (without payload bytes), oldest first."""
        cols = [c for c in dead_letter.c if c.name != "payload"]
        stmt = select(*cols).order_by(dead_letter.c.dl_id).limit(limit).offset(offset)
        if status:
            stmt = stmt.where(dead_letter.c.status == status)
        if channel:
            stmt = stmt.where(dead_letter.c.channel == channel)
        with self.engine.connect() as conn:
            return [_dead_letter_row(r) for r in conn.execute(stmt).mappings().all()]

    def count_dead_letters(self, status: str | None = "open") -> int:
        """Number of dead letters in a status (all when None)."""
        stmt = select(func.count()).select_from(dead_letter)
        if status:
            stmt = stmt.where(dead_letter.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def get_dead_letter(self, dl_id: int) -> dict | None:
        """One dead letter including its payload, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(dead_letter).where(dead_letter.c.dl_id == dl_id)).mappings().first()
        return _dead_letter_row(row) if row else None

    def mark_dead_letter(
        self, dl_id: int, status: str, reason: str | None = None, errors: list[dict] | None = None
    ) -> None:
        """After a replay attempt: set status (replayed|failed|open), bump attempts, keep the latest reason
        (and errors, when the replay gave some)."""
        values: dict = {"status": status, "replayed_at": now_us(), "attempts": dead_letter.c.attempts + 1}
        if reason:
            values["reason"] = reason
        if errors:
            values["errors"] = orjson.dumps(errors).decode()
        with self.engine.begin() as conn:
            conn.execute(update(dead_letter).where(dead_letter.c.dl_id == dl_id).values(**values))

    # -- processed messages -----------------------------------------------------------------------
    def stored_responses(self, channel: str, keys: list[str]) -> dict[str, bytes]:
        """Responses already sent for these message keys (re-sends get the same answer)."""
        if not keys:
            return {}
        stored_as = {_text(k): k for k in keys}
        pm = processed_message.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(pm.message_key, pm.response).where(
                    pm.channel == channel, pm.message_key.in_(list(stored_as))
                )
            ).all()
        return {stored_as[r.message_key]: r.response for r in rows}

    def remember(self, channel: str, responses: dict[str, bytes]) -> dict[str, bytes]:
        """Store responses for re-sends; where a concurrent re-send won the race, its response is
        returned for that key instead of ours."""
        if not responses:
            return {}
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(processed_message),
                    [
                        {"channel": channel, "message_key": _text(k), "processed_at": now_us(), "response": a}
                        for k, a in responses.items()
                    ],
                )
            return responses
        except IntegrityError:
            out = {}
            for key, response in responses.items():
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(processed_message).values(
                                channel=channel,
                                message_key=_text(key),
                                processed_at=now_us(),
                                response=response,
                            )
                        )
                    out[key] = response
                except IntegrityError:
                    out[key] = self.stored_responses(channel, [key]).get(key, response)
            return out


_REPOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def ingest_repository(store) -> IngestRepository:
    """The repository for the database behind a SQL store (tables created on first use)."""
    engine = store.engine
    with _LOCK:
        repo = _REPOS.get(engine)
        if repo is None:
            repo = _REPOS[engine] = IngestRepository(engine)
        return repo


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached now" (retry later), as opposed to
    errors about the data: a dropped or refused connection, a terminated backend."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from fhir_server.storage.base import StorageUnavailable

    return isinstance(exc, (StorageUnavailable, OperationalError, InterfaceError))
