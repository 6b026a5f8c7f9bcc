"""One received message -> archived, de-duplicated on MSH-10, ingested through the pipeline, answered.

Sync (SQLAlchemy) on purpose: the MLLP listener runs it in a worker thread. The ACK is built only after
`adapters.pipeline.ingest` returned, i.e. after the FHIR transaction committed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from adapters.hl7v2.ack import AckError, Header, build_ack
from adapters.hl7v2.er7 import read_message
from adapters.hl7v2.errors import INTERNAL_ERROR, Hl7Error
from adapters.pipeline import ingest
from fhir_server.storage import inbox as ib
from fhir_server.storage.schema import processed_message
from fhir_server.timeutil import now_us

log = logging.getLogger(__name__)
CHANNEL = "hl7v2"
CONTENT_TYPE = "x-application/hl7-v2+er7"
_TAG = re.compile(r"^\[(AA|AE|AR) (\d{1,3})\] ?(.*)$", re.S)


@dataclass
class Outcome:
    """What the listener sends back, and why."""

    ack: bytes
    code: str  # AA | AE | AR
    duplicate: bool = False
    inbox_id: int | None = None


def message_key(header: Header) -> str:
    """Idempotency key: MSH-10 is only unique per sending application and facility."""
    return f"{header.sending_app}|{header.sending_facility}|{header.control_id}"[:255]


def _stored_ack(engine, key: str) -> bytes | None:
    with engine.connect() as conn:
        return conn.execute(select(processed_message.c.response).where(
            processed_message.c.channel == CHANNEL, processed_message.c.message_key == key)).scalar()


def _remember(engine, key: str, ack: bytes) -> bytes:
    """Store the ACK for re-sends; if a concurrent re-send won the race, answer with its ACK."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(processed_message).values(channel=CHANNEL, message_key=key,
                                                          processed_at=now_us(), response=ack))
        return ack
    except IntegrityError:
        return _stored_ack(engine, key) or ack


def _ack_errors(result) -> tuple[str, list[AckError]]:
    """AA/AE/AR and ERR entries from a pipeline IngestResult (errors tagged "[AE 101] ..." by the adapter)."""
    errors = []
    for e in list(result.errors) + [e for r in result.records for e in r.errors]:
        if e not in errors:  # the pipeline repeats file-level errors on the "file" record
            errors.append(e)
    if not errors and result.records and all(r.status == "accepted" for r in result.records):
        return "AA", []
    code = "AE"
    out = []
    for e in errors:
        m = _TAG.match(e.get("reason") or "")
        if m:
            if m.group(1) == "AR":
                code = "AR"
            out.append(AckError(m.group(2), e.get("location") or "", m.group(3)))
        else:
            # Untagged: the store or the pipeline failed (database, conflict): a system problem, retry later.
            code = "AR"
            out.append(AckError(INTERNAL_ERROR, "", f"{e.get('location')}: {e.get('reason')}"))
    if not out:
        code = "AR"
        out.append(AckError(INTERNAL_ERROR, "", "message produced no record"))
    return code, out


def process(store, raw: bytes, *, peer: str = "mllp", options: dict | None = None) -> Outcome:
    """Archive, de-duplicate, ingest and acknowledge one message; never raises."""
    try:
        header = Header.from_message(read_message(raw))
    except Hl7Error:
        header = Header.sniff(raw)
    except Exception:  # decoding bugs must not kill the connection
        header = Header.sniff(raw)
    key = message_key(header) if header.control_id else None
    try:
        if key:
            stored = _stored_ack(store.engine, key)
            if stored is not None:
                inbox_id = ib.archive(store.engine, raw, source=f"mllp:{peer}", channel=CHANNEL,
                                      content_type=CONTENT_TYPE, summary={"duplicate_of": key})
                ib.mark(store.engine, inbox_id, "duplicate")
                return Outcome(stored, _code_of(stored), duplicate=True, inbox_id=inbox_id)
        result = ingest(store, raw, source=f"mllp:{peer}", adapter="hl7v2", content_type=CONTENT_TYPE,
                        options=options)
    except Exception as exc:  # database unreachable etc.: nothing committed, the sender should retry
        log.exception("processing of an HL7 message failed")
        ack = build_ack(header, "AR", [AckError(INTERNAL_ERROR, "", f"{type(exc).__name__}: {exc}"[:200])])
        return Outcome(ack, "AR")
    code, errors = _ack_errors(result)
    ack = build_ack(header, code, errors)
    # AR answers are not remembered: "retry later" must be able to succeed later.
    if key and code in ("AA", "AE"):
        ack = _remember(store.engine, key, ack)
        code = _code_of(ack)
    return Outcome(ack, code, inbox_id=result.inbox_id)


def _code_of(ack: bytes) -> str:
    """MSA-1 of an ACK we built."""
    for seg in ack.split(b"\r"):
        if seg.startswith(b"MSA|"):
            return seg[4:6].decode("ascii", "replace")
    return "AR"
