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

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adapters.hl7v2.mllp import frame
from adapters.repository import inbox
from tests.adapters.fuzz import drive, properties
from tests.adapters.fuzz.hl7v2_inputs import Hl7Case, MllpCase, hl7_message, mllp_stream
from tests.adapters.fuzz.qd130_inputs import ATTACKS, Hoso, Qd130Case, envelope, qd130_case, victims, witness
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
        within(lambda: properties.qd130_check(case), what="QĐ130 check")

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


def test_hostile_qd130_files_over_http_are_archived_dead_lettered_and_idempotent(live_server, store, caplog):
    drive.capture_logs(caplog)
    people = set(_WITNESS_PEOPLE)
    witness_key = witness().ma_lk
    with httpx.Client(base_url=live_server.removesuffix("/fhir"), timeout=120) as http:

        @settings(max_examples=QD130_HTTP_CASES, **_SETTINGS)
        # The named route, and the auto-detecting one (as the watch folder and `lienthong ingest` do).
        @given(case=qd130_case(), route=st.sampled_from(["/ingest/qd130", "/ingest"]))
        def send(case: Qd130Case, route: str) -> None:
            people.update(case.names)
            first = within(lambda: http.post(route, content=case.payload), what=f"POST {route}")
            body = drive.check_ingest_answer(store, case.payload, first)
            if case.witness_key:
                assert drive.outcomes(body).get(witness_key) == "accepted", body["records"]
            before = drive.distinct_resources(store)
            again = within(lambda: http.post(route, content=case.payload), what="re-send")
            body_again = drive.check_ingest_answer(store, case.payload, again)
            assert drive.outcomes(body_again) == drive.outcomes(body)
            assert drive.distinct_resources(store) == before

        send()
    assert drive.leaked(caplog.text, people) == []


def test_hostile_hl7v2_messages_over_http_are_archived_dead_lettered_and_idempotent(
    live_server, store, caplog
):
    drive.capture_logs(caplog)
    people: set[str] = set()
    with httpx.Client(base_url=live_server.removesuffix("/fhir"), timeout=120) as http:

        @settings(max_examples=HL7_HTTP_CASES, **_SETTINGS)
        @given(case=hl7_message(control_prefix="HT"))
        def send(case: Hl7Case) -> None:
            people.update(case.names)
            first = within(
                lambda: http.post("/ingest/hl7v2", content=case.payload), what="POST /ingest/hl7v2"
            )
            body = drive.check_ingest_answer(store, case.payload, first)
            before = drive.distinct_resources(store)
            again = within(lambda: http.post("/ingest/hl7v2", content=case.payload), what="re-send")
            assert drive.outcomes(drive.check_ingest_answer(store, case.payload, again)) == drive.outcomes(
                body
            )
            assert drive.distinct_resources(store) == before

        send()
    assert drive.leaked(caplog.text, people) == []


@pytest.fixture
def mllp(store):
    listener = drive.Listener(store)
    yield listener
    listener.close()


def test_mllp_listener_acks_every_frame_of_hostile_streams_and_stays_up(mllp, store, caplog):
    drive.capture_logs(caplog)
    people: set[str] = set()
    alive = frame(ADT_A01)

    @settings(max_examples=MLLP_CASES, **_SETTINGS)
    @given(case=mllp_stream())
    def send(case: MllpCase) -> None:
        for m in case.frames:
            people.update(m.names)
        stream = b"".join(case.chunks)
        frames = drive.frames(stream)
        archived = [f for f in frames if len(f) <= mllp.server.max_bytes]
        with store.engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        acks = within(lambda: drive.exchange(mllp.port, case.chunks, len(frames)), what="MLLP exchange")
        codes = [properties.ack_code(a) for a in acks]
        # Every message received is archived, byte for byte, before it is answered.
        with store.engine.connect() as conn:
            after = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        assert after - before == len(archived)
        if archived:
            assert drive.inbox_payloads(store, len(archived)) == archived
        # Re-sending each message answers the same way and writes nothing new.
        resources = drive.distinct_resources(store)
        for raw, code in zip(frames, codes):
            if code in ("AA", "AE"):
                again = within(
                    lambda raw=raw: drive.exchange(mllp.port, [frame(raw)], 1), what="MLLP re-send"
                )
                assert properties.ack_code(again[0]) == code
        assert drive.distinct_resources(store) == resources
        # The listener is still up and answering.
        assert properties.ack_code(within(lambda: drive.exchange(mllp.port, [alive], 1))[0]) == "AA"

    send()
    assert drive.leaked(caplog.text, people) == []


@pytest.mark.parametrize("attack", ATTACKS, ids=[f"attack{i}" for i in range(len(ATTACKS))])
def test_every_xml_attack_in_an_inner_table_is_refused_for_that_hoso_only(attack):
    victim = victims()[0]
    files = [("XML1", attack), *victim.files[1:]]
    payload = envelope([Hoso(files), witness()])

    parsed = within(lambda: properties.QD130.parse(payload, {}), what="attack parse")

    outcome = {r.key: properties.QD130.to_fhir(r, {}) for r in parsed.records}
    assert outcome.pop(witness().ma_lk).bundle is not None
    [refused] = outcome.values()
    assert refused.bundle is None
    reasons = " ".join(e.reason for e in refused.errors)
    if b"<!DOCTYPE" in attack:
        assert "DTD/entity declarations are not allowed" in reasons, reasons
    assert "root:x:0:0" not in reasons
