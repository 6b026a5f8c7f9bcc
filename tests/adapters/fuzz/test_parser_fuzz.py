"""Bounded, seeded property-based fuzz of the inbound parsers (issue 13, hardening): hostile QĐ130
files and HL7 v2 messages built from real samples (qd130_inputs.py, hl7v2_inputs.py), through the pure
parse functions for volume and through the real entry points — POST /ingest/{adapter} on a real uvicorn
and the MLLP listener on a loopback socket — on SQLite and PostgreSQL.

Properties (properties.py): no unexpected exception (only per-record errors / ACK AE|AR), no hang (a
watchdog, not a speed assertion), the raw payload archived before parsing, every rejected record in the
dead letters with a precise reason, valid records of the same file still written, re-sending
idempotent, no generated patient name or CCCD in the log output. The long run is
`python bench/fuzz_parsers.py`."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import distinct, func, select, tuple_

from adapters.hl7v2.mllp import END, VT, MllpServer, frame
from adapters.repository import inbox, ingest_repository
from fhir_server.storage.sql.schema import resource
from tests.adapters.fuzz import properties
from tests.adapters.fuzz.hl7v2_inputs import Hl7Case, MllpCase, hl7_message, mllp_stream
from tests.adapters.fuzz.qd130_inputs import Qd130Case, qd130_case, witness
from tests.adapters.fuzz.watchdog import within
from tests.adapters.hl7v2.samples import ADT_A01

# Cases per run: the pure parsers once, the entry points on each database.
QD130_PARSE_CASES = 150
HL7_PARSE_CASES = 150
QD130_HTTP_CASES = 40
HL7_HTTP_CASES = 40
MLLP_CASES = 40

_SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
# Patient data of the untouched sample HOSO that rides along in every QĐ130 case.
_WITNESS_PEOPLE = ["TRƯƠNG HỒNG QUYÊN", "079163000001"]


def test_qd130_parser_answers_every_hostile_file_with_precise_errors():
    labels: dict[str, int] = {}

    @settings(max_examples=QD130_PARSE_CASES, **_SETTINGS)
    @given(case=qd130_case())
    def run(case: Qd130Case) -> None:
        label = within(lambda: properties.qd130_parse(case), what="QĐ130 parse")
        labels[label] = labels.get(label, 0) + 1

    run()
    # The generator reaches every outcome, so the properties were exercised on each.
    assert set(labels) == {"all accepted", "some rejected", "file refused"}, labels


def test_hl7v2_parser_answers_every_hostile_message_with_tagged_errors():
    labels: dict[str, int] = {}

    @settings(max_examples=HL7_PARSE_CASES, **_SETTINGS)
    @given(case=hl7_message())
    def run(case: Hl7Case) -> None:
        label = within(lambda: properties.hl7_parse(case), what="HL7 v2 parse")
        labels[label] = labels.get(label, 0) + 1

    run()
    assert set(labels) == {"accepted", "rejected", "refused"}, labels


def _capture_logs(caplog) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="sqlalchemy")  # SQL echo is off in production too


def _no_patient_data(caplog, people: set[str]) -> None:
    logged = caplog.text
    leaked = sorted(p for p in people if p and p in logged)
    assert leaked == [], leaked


def _distinct_resources(store) -> int:
    with store.engine.connect() as conn:
        stmt = select(func.count(distinct(tuple_(resource.c.res_type, resource.c.res_id))))
        if store.engine.dialect.name == "sqlite":
            inner = select(resource.c.res_type, resource.c.res_id).distinct().subquery()
            stmt = select(func.count()).select_from(inner)
        return int(conn.execute(stmt).scalar_one())


def _check_ingest_answer(store, payload: bytes, r: httpx.Response) -> dict:
    """The answer of POST /ingest/…: a defined status, the payload archived byte for byte, every
    rejected record dead-lettered with a precise reason."""
    assert r.status_code in (200, 207, 422), (r.status_code, r.text[:300])
    body = r.json()
    repo = ingest_repository(store)
    row = repo.get_inbox(body["inbox_id"])
    assert row is not None and bytes(row["payload"]) == payload
    assert row["status"] in ("processed", "partial", "failed")
    for e in body["errors"]:
        properties.precise(e)
    for rec in body["records"]:
        if rec["status"] == "accepted":
            continue
        assert rec["errors"], rec
        for e in rec["errors"]:
            properties.precise(e)
        dl = repo.get_dead_letter(rec["dead_letter_id"])
        assert dl is not None and dl["reason"] and dl["payload"], rec
        assert dl["record_key"] == (None if rec["key"] == "file" else rec["key"]), (
            dl["record_key"],
            rec["key"],
        )
    return body


def _outcomes(body: dict) -> dict[str, str]:
    return {rec["key"]: rec["status"] for rec in body["records"]}


def test_hostile_qd130_files_over_http_are_archived_dead_lettered_and_idempotent(live_server, store, caplog):
    _capture_logs(caplog)
    people = set(_WITNESS_PEOPLE)
    witness_key = witness().ma_lk
    with httpx.Client(base_url=live_server.removesuffix("/fhir"), timeout=120) as http:

        @settings(max_examples=QD130_HTTP_CASES, **_SETTINGS)
        @given(case=qd130_case())
        def send(case: Qd130Case) -> None:
            people.update(case.names)
            first = within(
                lambda: http.post("/ingest/qd130", content=case.payload), what="POST /ingest/qd130"
            )
            body = _check_ingest_answer(store, case.payload, first)
            if case.witness_key:
                assert _outcomes(body).get(witness_key) == "accepted", body["records"]
            before = _distinct_resources(store)
            again = within(lambda: http.post("/ingest/qd130", content=case.payload), what="re-send")
            body_again = _check_ingest_answer(store, case.payload, again)
            assert _outcomes(body_again) == _outcomes(body)
            assert _distinct_resources(store) == before

        send()
    _no_patient_data(caplog, people)


def test_hostile_hl7v2_messages_over_http_are_archived_dead_lettered_and_idempotent(
    live_server, store, caplog
):
    _capture_logs(caplog)
    people: set[str] = set()
    with httpx.Client(base_url=live_server.removesuffix("/fhir"), timeout=120) as http:

        @settings(max_examples=HL7_HTTP_CASES, **_SETTINGS)
        @given(case=hl7_message(control_prefix="HT"))
        def send(case: Hl7Case) -> None:
            people.update(case.names)
            first = within(
                lambda: http.post("/ingest/hl7v2", content=case.payload), what="POST /ingest/hl7v2"
            )
            body = _check_ingest_answer(store, case.payload, first)
            before = _distinct_resources(store)
            again = within(lambda: http.post("/ingest/hl7v2", content=case.payload), what="re-send")
            assert _outcomes(_check_ingest_answer(store, case.payload, again)) == _outcomes(body)
            assert _distinct_resources(store) == before

        send()
    _no_patient_data(caplog, people)


class _Listener:
    """The real MLLP listener on a loopback port, its event loop in a thread of its own."""

    def __init__(self, store) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = MllpServer(store, port=0, max_bytes=1024 * 1024, workers=2, idle_timeout=30)
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _frames(stream: bytes) -> list[bytes]:
    """The complete MLLP frames of a byte stream: VT … FS CR (bytes outside frames are ignored)."""
    out, pos = [], 0
    while (start := stream.find(VT, pos)) >= 0 and (end := stream.find(END, start + 1)) >= 0:
        out.append(stream[start + 1 : end])
        pos = end + 2
    return out


def _exchange(port: int, chunks: list[bytes], answers: int) -> list[bytes]:
    """Write the chunks on one connection and read `answers` ACK frames back."""
    acks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        buf = b""
        while len(acks) < answers:
            data = sock.recv(65536)
            assert data, f"connection closed after {len(acks)} of {answers} ACKs"
            buf += data
            while (end := buf.find(END)) >= 0:
                assert buf.startswith(VT), buf[:80]
                acks.append(buf[1:end])
                buf = buf[end + 2 :]
    return acks


def _inbox_payloads(store, n: int) -> list[bytes]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.payload).order_by(inbox.c.inbox_id.desc()).limit(n)).all()
    return [bytes(r.payload) for r in reversed(rows)]


@pytest.fixture
def mllp(store):
    listener = _Listener(store)
    yield listener
    listener.close()


def test_mllp_listener_acks_every_frame_of_hostile_streams_and_stays_up(mllp, store, caplog):
    _capture_logs(caplog)
    people: set[str] = set()
    alive = frame(ADT_A01)

    @settings(max_examples=MLLP_CASES, **_SETTINGS)
    @given(case=mllp_stream())
    def send(case: MllpCase) -> None:
        for m in case.frames:
            people.update(m.names)
        stream = b"".join(case.chunks)
        frames = _frames(stream)
        archived = [f for f in frames if len(f) <= mllp.server.max_bytes]
        with store.engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        acks = within(lambda: _exchange(mllp.port, case.chunks, len(frames)), what="MLLP exchange")
        codes = [properties.ack_code(a) for a in acks]
        # Every message received is archived, byte for byte, before it is answered.
        with store.engine.connect() as conn:
            after = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        assert after - before == len(archived)
        if archived:
            assert _inbox_payloads(store, len(archived)) == archived
        # Re-sending each message answers the same way and writes nothing new.
        resources = _distinct_resources(store)
        for raw, code in zip(frames, codes):
            if code in ("AA", "AE"):
                again = within(lambda raw=raw: _exchange(mllp.port, [frame(raw)], 1), what="MLLP re-send")
                assert properties.ack_code(again[0]) == code
        assert _distinct_resources(store) == resources
        # The listener is still up and answering.
        assert properties.ack_code(within(lambda: _exchange(mllp.port, [alive], 1))[0]) == "AA"

    send()
    _no_patient_data(caplog, people)
