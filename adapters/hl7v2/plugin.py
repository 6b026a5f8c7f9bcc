"""The `hl7v2` adapter plug-in: one HL7 v2 message -> one FHIR transaction Bundle."""

from __future__ import annotations

import re

from adapters.base import MappedRecord, ParseResult, RecordError, SourceRecord
from adapters.hl7v2.ack import Header
from adapters.hl7v2.convert import to_bundle
from adapters.hl7v2.datatypes import Context, datetime_
from adapters.hl7v2.er7 import Message, read_message
from adapters.hl7v2.errors import Hl7Error
from adapters.hl7v2.storable import storable_problem

# A message starts at an MSH line; batch envelopes (FHS/BHS/BTS/FTS) are dropped.
_MSH_START = re.compile(rb"(?:^|[\r\n])(?=MSH[^A-Za-z0-9\r\n])")
_ENVELOPE = re.compile(rb"(?:^|(?<=[\r\n]))(?:FHS|BHS|BTS|FTS)[^A-Za-z0-9\r\n][^\r\n]*[\r\n]*")


def split_messages(payload: bytes) -> list[bytes]:
    """Split a payload (one message, or a batch file) into the raw bytes of each message."""
    body = _ENVELOPE.sub(b"", payload.strip(b"\x0b\x1c\r\n\t \xef\xbb\xbf"))
    starts = [m.start() for m in _MSH_START.finditer(body)]
    if not starts:
        return [body] if body else []
    # Leading bytes before the first MSH are kept as their own (unreadable) piece so they get reported.
    bounds = ([0] if starts[0] > 0 and body[: starts[0]].strip() else []) + starts + [len(body)]
    return [body[s:e].strip(b"\r\n") for s, e in zip(bounds, bounds[1:]) if body[s:e].strip(b"\r\n")]


class Hl7v2Adapter:
    """HL7 v2.3-2.8.2 ER7 messages (82 trigger events, see messages.yaml) -> FHIR R4 transaction Bundles."""

    name = "hl7v2"
    channel = "hl7v2"
    facility_location = "MSH-4"
    refusal_tag = "[AR 207] "
    description = (
        "HL7 v2.3-2.8.2 ER7 messages (ADT, ORU/OUL, VXU, ORM/OML/OMG, RDE/RDS, SIU, REF, MDM, PPR, BAR/DFT)"
    )

    def sniff(self, payload: bytes, content_type: str | None = None) -> bool:
        """An ER7 payload starts with MSH followed by a field separator (optionally after MLLP/BOM bytes)."""
        if content_type and content_type.split(";")[0].strip().lower() in (
            "x-application/hl7-v2+er7",
            "application/hl7-v2",
        ):
            return True
        head = payload[:16].lstrip(b"\x0b\xef\xbb\xbf\r\n\t ")
        return len(head) >= 4 and head[:3] == b"MSH" and not head[3:4].isalnum()

    def parse(self, payload: bytes, options: dict | None = None) -> ParseResult:
        """Read every message of the payload; an unreadable message becomes a RecordError, never an exception."""
        result = ParseResult()
        for i, raw in enumerate(split_messages(payload), start=1):
            try:
                msg = read_message(raw)
            except Hl7Error as err:
                key = Header.sniff(raw).control_id or None
                result.errors.append(err.record_error(key))
                continue
            key = msg.control_id or f"message {i}"
            result.records.append(
                SourceRecord(
                    key=key, payload=raw, data=msg, meta={"type": f"{msg.message_code}^{msg.trigger}"}
                )
            )
        if not result.records and not result.errors:
            result.errors.append(RecordError("payload", "[AR 100] no HL7 message found (empty payload)"))
        return result

    def facility_of(self, record: SourceRecord) -> str | None:
        """MSH-4 (sending facility, namespace id) of the message."""
        msg = record.data if isinstance(record.data, Message) else None
        if msg is None:
            return None
        return (msg.sending_facility or "").strip() or None

    def to_fhir(self, record: SourceRecord, options: dict | None = None) -> MappedRecord:
        """Map one message; problems come back as errors tagged [AR|AE <table 0357 code>]."""
        msg = record.data if isinstance(record.data, Message) else None
        try:
            if msg is None:
                msg = read_message(record.payload)
            unstorable = storable_problem(msg)
            if unstorable is not None:
                raise unstorable
            bundle, warnings = to_bundle(msg, options)
        except Hl7Error as err:
            return MappedRecord(record.key, None, errors=[err.record_error(record.key)])
        return MappedRecord(record.key, bundle, warnings=warnings, source_time=_message_time(msg, options))


def _message_time(msg: Message, options: dict | None) -> str | None:
    """MSH-7, the time the sending system created the message (None when absent or unreadable)."""
    try:
        ctx = Context.build(msg.sending_facility or "unknown", options, msg.encoding)
        return datetime_(msg.msh.get(7), ctx, "MSH-7")
    except Exception:  # a bad MSH-7 only loses the stale-message rule for this message
        return None
