"""One regression test per defect the parser fuzz run found (docs/reliability-inputs.md, "Parser
fuzzing")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.hl7v2.mllp import MllpServer, frame
from adapters.hl7v2.processor import process
from adapters.pipeline import ingest, replay
from adapters.repository import ingest_repository
from tests.adapters.fuzz import properties
from tests.adapters.hl7v2.samples import ADT_A01

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def test_a_dead_letter_from_an_envelope_whose_macskcb_holds_an_ampersand_replays_to_its_own_reason(store):
    # Finding 1: the per-HOSO replay payload wrote MACSKCB back unescaped, so it was not XML any more.
    xml = (SAMPLES / "qd130" / "79001-hai-ho-so-mot-loi.xml").read_bytes()
    xml = xml.replace(b"<MACSKCB>79001</MACSKCB>", b"<MACSKCB>BV &amp; 79001</MACSKCB>")
    result = ingest(store, xml, source="file:hai-ho-so.xml", adapter="qd130")
    rejected = [r for r in result.records if r.status == "rejected"]
    assert [r.status for r in result.records] == ["accepted", "rejected"]

    outcome = replay(store, rejected[0].dead_letter_id)[0]

    assert outcome["status"] == "failed"
    assert [e["location"] for e in outcome["errors"]] == [e["location"] for e in rejected[0].errors]
    assert "NGAY_RA" in outcome["errors"][0]["location"]
    payload = ingest_repository(store).get_dead_letter(rejected[0].dead_letter_id)["payload"]
    assert b"<MACSKCB>BV &amp; 79001</MACSKCB>" in payload


def _with_msh(message: bytes, field: int, value: bytes) -> bytes:
    msh, rest = message.split(b"\r", 1)
    parts = msh.split(b"|")
    while len(parts) < field:
        parts.append(b"")
    parts[field - 1] = value
    return b"|".join(parts) + b"\r" + rest


def test_the_ack_of_a_message_with_control_bytes_in_its_msh_carries_none_of_them(store):
    # Finding 2: VT and FS of an unreadable MSH (here MSH-4 and an unknown MSH-18) were echoed into the
    # ACK, inside the MLLP frame that FS+CR closes.
    raw = _with_msh(_with_msh(ADT_A01, 4, b"BV\x0bDEMO\x1cX"), 18, b"UNICODE\x0b\x1cUTF-8")

    outcome = process(store, raw)

    assert outcome.code == "AR"
    assert b"\x0b" not in outcome.ack and b"\x1c" not in outcome.ack
    segments = properties.ack_segments(outcome.ack)
    assert segments["MSH"][0].split("|")[5] == "BV DEMO X"


async def test_over_mllp_that_ack_arrives_whole_and_the_connection_keeps_working(store):
    server = MllpServer(store, port=0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(_with_msh(ADT_A01, 18, b"UTF-8\x0b\x1cX")) + frame(ADT_A01))
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
        second = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()
    assert properties.ack_code(first[1:-2]) == "AR"
    assert properties.ack_code(second[1:-2]) == "AA"


def test_a_qd130_file_saved_as_utf16_is_recognised_without_naming_the_adapter(store):
    # Finding 3: the parser read UTF-16 files but detection looked for ASCII bytes, so POST /ingest,
    # the watch folder and `lienthong ingest` refused them as "no installed adapter".
    text = (SAMPLES / "qd130" / "79001-ngoai-tru.xml").read_text(encoding="utf-8")
    for encoded in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-16-be")):
        result = ingest(store, encoded, source="file:ngoai-tru-utf16.xml")

        assert result.adapter == "qd130"
        assert [r.status for r in result.records] == ["accepted"]


def test_a_nul_in_msh10_is_answered_ae_once_dead_lettered_and_its_resend_gets_the_same_ack(store):
    # Finding 4: on PostgreSQL the NUL of MSH-10 (the record key and the re-send key) failed every
    # insert: no dead letter, and AR "retry later" to the sender for ever.
    raw = ADT_A01.replace(b"|ADT0001|", b"|ADT\x000001|", 1)

    first = process(store, raw)
    again = process(store, raw)

    assert first.code == "AE"
    assert "MSH^1^10" in first.ack.decode()
    assert again.duplicate and again.ack == first.ack
    [dl] = ingest_repository(store).list_dead_letters("open", 10)
    assert dl["record_key"] == "ADT\ufffd0001"
    assert "U+0000" in dl["reason"]


def test_a_nul_in_msh10_posted_to_ingest_gets_a_dead_letter_not_a_pipeline_failure(store):
    raw = ADT_A01.replace(b"|ADT0001|", b"|ADT\x000001|", 1)

    result = ingest(store, raw, source="http:127.0.0.1", adapter="hl7v2")

    [record] = result.records
    assert record.status == "rejected" and record.dead_letter_id is not None
    assert [e["location"] for e in record.errors] == ["MSH-10"]
    assert result.errors == []


def test_an_amount_beyond_64_bits_rejects_its_own_hoso_and_the_other_hoso_is_written(store):
    # Finding 5: MUC_HUONG = 1180591620717411303424 was mapped as a Python int; serialising it failed
    # the group commit, so every record of the file (and of its batch) was reported "database write
    # failed".
    xml = (SAMPLES / "qd130" / "79001-hai-ho-so-mot-loi.xml").read_bytes()
    ok = (SAMPLES / "qd130" / "79001-ngoai-tru.xml").read_bytes()
    huge = _with_xml3_value(ok, "MUC_HUONG", "1180591620717411303424")

    results = [
        ingest(store, payload, source=f"file:{i}.xml", adapter="qd130")
        for i, payload in enumerate([huge, xml])
    ]

    [bad] = results[0].records
    assert bad.status == "rejected"
    assert bad.errors[0]["location"] == "XML3/CHI_TIET_DVKT[1]/MUC_HUONG"
    assert "out of range" in bad.errors[0]["reason"]
    assert [r.status for r in results[1].records] == ["accepted", "rejected"]


def _with_xml3_value(envelope_xml: bytes, tag: str, value: str) -> bytes:
    """The file with the first `tag` of its XML3 table set to `value` (inside the base64 NOIDUNGFILE)."""
    import base64
    import re

    def swap(m: re.Match) -> bytes:
        inner = base64.b64decode(m.group(2))
        inner = re.sub(rf"<{tag}>[^<]*</{tag}>".encode(), f"<{tag}>{value}</{tag}>".encode(), inner, count=1)
        return m.group(1) + base64.b64encode(inner) + b"</NOIDUNGFILE>"

    return re.sub(
        rb"(<LOAIHOSO>XML3</LOAIHOSO><NOIDUNGFILE>)(.*?)</NOIDUNGFILE>", swap, envelope_xml, flags=re.S
    )
