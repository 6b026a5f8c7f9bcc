"""One received message -> archived, de-duplicated on MSH-10, ingested through the pipeline, answered.

Sync (SQLAlchemy) on purpose: the MLLP listener runs it in a worker thread. The ACK is built only after
`adapters.pipeline.ingest` returned, i.e. after the FHIR transaction committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from adapters.hl7v2.ack import AckError, Header, build_ack
from adapters.hl7v2.er7 import read_message
from adapters.hl7v2.errors import INTERNAL_ERROR
from adapters.pipeline import ingest_many
from adapters.repository import ingest_repository
from fhir_server.logsafe import log_failure

log = logging.getLogger(__name__)
CHANNEL = "hl7v2"
CONTENT_TYPE = "x-application/hl7-v2+er7"
_TAG = re.compile(r"^\[(AA|AE|AR|W) (\d{1,3})\] ?(.*)$", re.S)


@dataclass
class Outcome:
    """What the listener sends back, and why."""

    ack: bytes
    code: str  # AA | AE | AR
    duplicate: bool = False
    inbox_id: int | None = None


def message_key(header: Header, raw: bytes = b"") -> str:
    """Idempotency key: MSH-10 is only unique per sending application and facility.

    A digest of the content (without MSH-7, which some engines restamp on a retry) is part of the key:
    a re-send gets the stored ACK, but a different message that reuses an MSH-10 (test tools, HIS
    counters reset after an upgrade) is processed instead of being answered with another message's ACK."""
    prefix = f"{header.sending_app}|{header.sending_facility}|{header.control_id}"[:210]
    return f"{prefix}|{_content_digest(raw)}" if raw else prefix


def _content_digest(raw: bytes) -> str:
    body = raw.strip(b"\xef\xbb\xbf\x0b\x1c\r\n\t ").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    first, sep, rest = body.partition(b"\r")
    fields = first.split(first[3:4] or b"|")
    if len(fields) > 6:
        fields[6] = b""  # MSH-7 (fields[0] is "MSH", fields[n-1] is MSH-n)
    return hashlib.sha256(b"|".join(fields) + sep + rest.rstrip(b"\r")).hexdigest()[:32]


def _ack_errors(result) -> tuple[str, list[AckError]]:
    """AA/AE/AR and ERR entries from a pipeline IngestResult (errors tagged "[AE 101] ..." by the adapter)."""
    errors = []
    for e in list(result.errors) + [e for r in result.records for e in r.errors]:
        if e not in errors:  # the pipeline repeats file-level errors on the "file" record
            errors.append(e)
    warnings = _ack_warnings(result)
    if not errors and result.records and all(r.status == "accepted" for r in result.records):
        return "AA", warnings
    code = "AE"
    out = []
    for e in errors:
        m = _TAG.match(e.get("reason") or "")
        if m:
            if m.group(1) == "AR":
                code = "AR"
            out.append(AckError(m.group(2), e.get("location") or "", m.group(3)))
        elif e.get("location") == "store/data":
            # The store refused this message's own data: resending it fails the same way, so AE (the
            # sender must fix it), never AR, which tells the sender to retry forever.
            out.append(AckError(INTERNAL_ERROR, "", f"{e.get('location')}: {e.get('reason')}"))
        else:
            # Untagged: the store or the pipeline failed (database, conflict): a system problem, retry later.
            code = "AR"
            out.append(AckError(INTERNAL_ERROR, "", f"{e.get('location')}: {e.get('reason')}"))
    if not out:
        code = "AR"
        out.append(AckError(INTERNAL_ERROR, "", "message produced no record"))
    return code, out + warnings


def _ack_warnings(result) -> list[AckError]:
    """Warnings of the message ("[W 103] ...": unmapped segments, substituted codes) as ERR severity W."""
    out = []
    for w in list(result.warnings) + [w for r in result.records for w in r.warnings]:
        m = _TAG.match(w.get("reason") or "")
        code, reason = (m.group(2), m.group(3)) if m else ("0", w.get("reason") or "")
        out.append(AckError(code, w.get("location") or "", reason, severity="W"))
    return out


def ack_for(raw: bytes, result) -> bytes:
    """The ACK (AA/AE/AR with ERR segments) an IngestResult of one message amounts to (HTTP ingest)."""
    code, errors = _ack_errors(result)
    return build_ack(_header(raw), code, errors)


def _header(raw: bytes) -> Header:
    try:
        return Header.from_message(read_message(raw))
    except Exception:  # unparseable or a decoding bug: still answer, from what can be sniffed
        return Header.sniff(raw)


def process(store, raw: bytes, *, peer: str = "mllp", options: dict | None = None) -> Outcome:
    """Archive, de-duplicate, ingest and acknowledge one message; never raises."""
    return process_batch(store, [(raw, peer)], options=options)[0]


def process_batch(store, items: list[tuple[bytes, str]], *, options: dict | None = None) -> list[Outcome]:
    """Archive, de-duplicate, ingest and acknowledge several messages with one group commit.

    Messages that arrived on different connections while the previous batch was being written share
    one archive commit and one data commit; each message still succeeds or fails on its own, and every
    ACK is built only after that commit. Never raises."""
    headers = [_header(raw) for raw, _ in items]
    keys = [message_key(h, raw) if h.control_id else None for h, (raw, _) in zip(headers, items)]
    outcomes: list[Outcome | None] = [None] * len(items)
    try:
        repo = ingest_repository(store)
        stored = repo.stored_responses(CHANNEL, sorted({k for k in keys if k}))
        first_of: dict[str, int] = {}
        fresh = []
        for i, key in enumerate(keys):
            if key and (key in stored or key in first_of):
                continue  # a re-send: answered below with the ACK of the first copy
            if key:
                first_of[key] = i
            fresh.append(i)
        results = ingest_many(
            store,
            [(items[i][0], f"mllp:{items[i][1]}") for i in fresh],
            adapter="hl7v2",
            content_type=CONTENT_TYPE,
            options=options,
        )
        to_remember: dict[str, bytes] = {}
        for i, result in zip(fresh, results):
            code, errors = _ack_errors(result)
            ack = build_ack(headers[i], code, errors)
            outcomes[i] = Outcome(ack, code, inbox_id=result.inbox_id)
            # AR answers are not remembered: "retry later" must be able to succeed later.
            if keys[i] and code in ("AA", "AE"):
                to_remember[keys[i]] = ack
        for key, ack in repo.remember(CHANNEL, to_remember).items():
            i = first_of[key]
            outcomes[i] = Outcome(ack, _code_of(ack), inbox_id=outcomes[i].inbox_id)
            stored[key] = ack
        _answer_duplicates(store, items, keys, outcomes, stored)
    except Exception as exc:  # database unreachable etc.: nothing committed, the sender should retry
        log_failure(log, "processing of %d HL7 message(s) failed", exc, len(items))
        for i, h in enumerate(headers):
            if outcomes[i] is None:
                ack = build_ack(h, "AR", [AckError(INTERNAL_ERROR, "", f"{type(exc).__name__}: {exc}"[:200])])
                outcomes[i] = Outcome(ack, "AR")
    return outcomes


def _answer_duplicates(store, items, keys, outcomes, stored: dict[str, bytes]) -> None:
    """Re-sends get the stored ACK; their raw bytes are archived too (nothing received is dropped)."""
    dups = [i for i, o in enumerate(outcomes) if o is None]
    if not dups:
        return
    repo = ingest_repository(store)
    ids = repo.archive_many(
        [
            {
                "payload": items[i][0],
                "source": f"mllp:{items[i][1]}",
                "channel": CHANNEL,
                "content_type": CONTENT_TYPE,
                "summary": {"duplicate_of": keys[i]},
            }
            for i in dups
        ],
    )
    repo.mark_many([(inbox_id, "duplicate", None) for inbox_id in ids])
    for i, inbox_id in zip(dups, ids):
        ack = stored.get(keys[i])
        if ack is None:  # the first copy was answered AR (not remembered): the re-send is answered the same
            first = next(o for j, o in enumerate(outcomes) if keys[j] == keys[i] and o is not None)
            ack = first.ack
        outcomes[i] = Outcome(ack, _code_of(ack), duplicate=True, inbox_id=inbox_id)


def _code_of(ack: bytes) -> str:
    """MSA-1 of an ACK we built."""
    for seg in ack.split(b"\r"):
        if seg.startswith(b"MSA|"):
            return seg[4:6].decode("ascii", "replace")
    return "AR"


@dataclass
class QueuedBatch:
    """HL7 v2 messages a broker worker processed: the inbox rows it closed and the ACK of each."""

    closed: set[int]  # inbox rows closed by this call (with their data, in one transaction)
    acks: dict[int, bytes]  # inbox id -> ACK (for the listener waiting on the commit)
    to_remember: dict[str, bytes]  # message key -> ACK, for re-sends
    first_inbox: dict[str, int]  # message key -> inbox id of its first copy


def process_queued(store, items: list, *, settings=None) -> QueuedBatch:
    """Process archived HL7 v2 messages (broker worker): de-duplicate on MSH-10 like the listener, then
    commit the fresh ones as one group that also closes every row (re-sends marked "duplicate")."""
    from adapters.pipeline import process_archived

    headers = {it.inbox_id: _header(it.payload) for it in items}
    keys = {
        it.inbox_id: (message_key(headers[it.inbox_id]) if headers[it.inbox_id].control_id else None)
        for it in items
    }
    repo = ingest_repository(store)
    stored = repo.stored_responses(CHANNEL, sorted({k for k in keys.values() if k}))
    first: dict[str, int] = {}
    fresh, dups = [], []
    for it in items:
        key = keys[it.inbox_id]
        if key and (key in stored or key in first):
            dups.append((it.inbox_id, key))
            continue
        if key:
            first[key] = it.inbox_id
        fresh.append(it)
    results, closed = process_archived(
        store, fresh, settings=settings, extra_marks=[(i, "duplicate", {"duplicate_of": k}) for i, k in dups]
    )
    acks: dict[int, bytes] = {}
    remember: dict[str, bytes] = {}
    for result in results:
        code, errors = _ack_errors(result)
        acks[result.inbox_id] = build_ack(headers[result.inbox_id], code, errors)
        key = keys[result.inbox_id]
        if key and code in ("AA", "AE"):
            remember[key] = acks[result.inbox_id]
    for inbox_id, key in dups:
        acks[inbox_id] = (
            stored.get(key)
            or acks.get(first.get(key, -1))
            or build_ack(
                headers[inbox_id], "AR", [AckError(INTERNAL_ERROR, "", "first copy not answered yet")]
            )
        )
    return QueuedBatch(closed, acks, remember, first)
