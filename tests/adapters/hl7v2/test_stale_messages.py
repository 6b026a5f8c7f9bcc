"""HL7 v2: a message created earlier (MSH-7) but delivered later never overwrites newer patient data."""

from __future__ import annotations

import orjson

from adapters.ids import deterministic_id
from adapters.pipeline import ingest_many
from tests.adapters.hl7v2.samples import PID_AN, PV1_IN, msg, msh


def _a08(ctrl: str, created: str, phone: str) -> bytes:
    return msg(
        msh("ADT^A08^ADT_A01", ctrl, ts=created),
        f"EVN|A08|{created}",
        PID_AN.replace("0912345678", phone),
        PV1_IN,
    )


def _patient(store) -> tuple[int, dict]:
    stored = store.read("Patient", deterministic_id("Patient", "01929", "BN000123"))
    return stored.version, orjson.loads(stored.content)


def _send(store, raw: bytes) -> None:
    [result] = ingest_many(store, [(raw, "mllp:test")], adapter="hl7v2")
    assert result.status == "processed", result.as_dict()


def _phones(body: dict) -> list[str]:
    return [t["value"] for t in body.get("telecom", [])]


def test_an_older_a08_delivered_late_leaves_the_newer_patient(store):
    _send(store, _a08("A08-NEW", "20240116100000", "0987654321"))
    version, _ = _patient(store)
    _send(store, _a08("A08-OLD", "20240115083000", "0912345678"))
    after_version, after = _patient(store)
    assert after_version == version and _phones(after) == ["0987654321"]


def test_a_newer_a08_updates_the_patient(store):
    _send(store, _a08("A08-OLD", "20240115083000", "0912345678"))
    _send(store, _a08("A08-NEW", "20240116100000", "0987654321"))
    version, body = _patient(store)
    assert version == 2 and _phones(body) == ["0987654321"]
