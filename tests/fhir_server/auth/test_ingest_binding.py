"""A hospital client (facility claim) ingests only its own facility's records over /ingest."""

from __future__ import annotations

from pathlib import Path

from adapters.synth.envelope import build_envelope, read_files
from tests.fhir_server.auth.helpers import bearer

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
CHO_RAY = {**bearer("system/*.cruds", facility="79001"), "Accept-Language": "vi"}
BACH_MAI = {**bearer("system/*.cruds", facility="01001"), "Accept-Language": "vi"}
HUB = bearer("system/*.cruds")
XML = {"Content-Type": "application/xml"}
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


def mixed_file() -> bytes:
    """One QĐ130 file holding a Chợ Rẫy outpatient record and a Bạch Mai inpatient record."""
    cho_ray = read_files((SAMPLES / "qd130/79001-ngoai-tru.xml").read_bytes())[0]
    bach_mai = read_files((SAMPLES / "qd130/01001-noi-tru.xml").read_bytes())[0]
    return build_envelope("79001", [cho_ray, bach_mai])


def adt(facility: str) -> bytes:
    """The sample admission (ADT^A01) as sent by `facility` (MSH-4)."""
    text = (SAMPLES / "hl7v2/adt-a01-nhap-vien.hl7").read_bytes()
    return text.replace(b"|HIS_DEMO|BVDK_DEMO|", f"|HIS_DEMO|{facility}|".encode(), 1)


async def test_hospital_ingests_its_own_records_and_other_facilities_records_are_refused_one_by_one(secured):
    r = await secured.post("http://test/ingest/qd130", content=mixed_file(), headers={**CHO_RAY, **XML})
    assert r.status_code == 207, r.text
    body = r.json()
    by_status = {rec["status"]: rec for rec in body["records"]}
    assert by_status["accepted"]["resources"] > 0
    refused = by_status["rejected"]
    assert refused["dead_letter_id"] is not None
    assert refused["errors"][0]["field"] == "MA_CSKCB"
    assert "01001" in refused["errors"][0]["reason"] and "79001" in refused["errors"][0]["reason"]
    assert "không phải" in refused["errors"][0]["reason"]


async def test_refused_record_is_a_dead_letter_with_the_reason(secured):
    r = await secured.post("http://test/ingest/qd130", content=mixed_file(), headers={**CHO_RAY, **XML})
    dl_id = next(rec["dead_letter_id"] for rec in r.json()["records"] if rec["status"] == "rejected")
    letters = (await secured.get("http://test/ingest/dead-letters", headers=HUB)).json()["items"]
    letter = next(d for d in letters if d["dl_id"] == dl_id)
    assert "01001" in letter["reason"] and "79001" in letter["reason"]


async def test_hospital_file_of_another_facility_only_is_refused_entirely(secured):
    other = (SAMPLES / "qd130/01001-noi-tru.xml").read_bytes()
    r = await secured.post("http://test/ingest/qd130", content=other, headers={**CHO_RAY, **XML})
    assert r.status_code == 422
    assert r.json()["accepted"] == 0
    patients = (await secured.get("Patient", headers=HUB)).json()
    assert patients["total"] == 0


async def test_token_without_facility_ingests_every_facility(secured):
    r = await secured.post("http://test/ingest/qd130", content=mixed_file(), headers={**HUB, **XML})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2


async def test_hl7_message_from_another_sending_facility_is_refused_with_an_ar_tag(secured):
    r = await secured.post("http://test/ingest/hl7v2", content=adt("79001"), headers={**BACH_MAI, **HL7})
    assert r.status_code == 422
    error = r.json()["records"][0]["errors"][0]
    assert error["location"] == "MSH-4"
    assert error["reason"].startswith("[AR 207]")


async def test_hl7_message_from_the_token_facility_is_accepted(secured):
    r = await secured.post("http://test/ingest/hl7v2", content=adt("79001"), headers={**CHO_RAY, **HL7})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1


async def test_refused_hl7_message_answers_ack_ar_with_err_when_asked_for_hl7(secured):
    r = await secured.post(
        "http://test/ingest/hl7v2",
        content=adt("79001"),
        headers={**BACH_MAI, **HL7, "Accept": "x-application/hl7-v2+er7"},
    )
    segments = r.text.strip().split("\r")
    assert segments[1].startswith("MSA|AR|")
    assert any(s.startswith("ERR|") and "207" in s for s in segments)


async def test_replaying_a_refused_record_keeps_the_uploaders_binding(secured):
    r = await secured.post("http://test/ingest/qd130", content=mixed_file(), headers={**CHO_RAY, **XML})
    dl_id = next(rec["dead_letter_id"] for rec in r.json()["records"] if rec["status"] == "rejected")
    replay = await secured.post(f"http://test/ingest/dead-letters/{dl_id}/replay", headers=HUB)
    assert replay.status_code == 422
    assert replay.json()["status"] == "failed"
