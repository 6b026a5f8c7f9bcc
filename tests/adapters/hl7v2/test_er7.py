"""ER7 reading: separators, terminators, escapes, character sets, framing residue."""

from __future__ import annotations

import unicodedata

import pytest

from adapters.hl7v2.er7 import read_message
from adapters.hl7v2.errors import Hl7Error
from adapters.hl7v2.plugin import split_messages
from tests.adapters.hl7v2.samples import ADT_A01, msh


def test_fields_components_and_repetitions():
    msg = read_message(ADT_A01)
    pid = msg.first("PID")
    assert msg.control_id == "ADT0001" and msg.version == "2.5"
    assert (msg.message_code, msg.trigger, msg.structure) == ("ADT", "A01", "ADT_A01")
    assert pid.get(3, 1, rep=1) == "001080012345" and pid.get(3, 5, rep=1) == "NI"
    assert pid.get(5, 1) == "NGUYỄN" and pid.get(5, 2) == "VĂN AN"
    assert msg.msh.get(1) == "|" and msg.msh.raw(2) == "^~\\&"
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "PV1", "ZPI"]


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n", b"\r"])
def test_segment_terminators(terminator):
    msg = read_message(ADT_A01.replace(b"\r", terminator))
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "PV1", "ZPI"]
    assert msg.first("PV1").get(19) == "VN2024000123"


def test_trailing_empty_fields_and_missing_components():
    msg = read_message(msh("ADT^A01", "X1").encode() + b"\rPID|1||BN1^^^H^MR||TRAN^AN||||||||||||\r")
    pid = msg.first("PID")
    assert pid.get(30) == "" and pid.get(5, 7) == "" and pid.reps(11) == []


def test_non_default_encoding_characters_and_escapes():
    raw = (
        "MSH#$*@%#HIS#BV#R#F#20240101##ADT$A01#C1#P#2.5\r"
        "PID#1##BN1$$$BV$MR*CMND9$$$BCA$CMND##PHẠM$THU @F@ HÀ#\r"
    ).encode()
    msg = read_message(raw)
    pid = msg.first("PID")
    assert msg.encoding.component == "$" and msg.encoding.repetition == "*"
    assert pid.get(3, 1, rep=1) == "CMND9" and pid.get(5, 2) == "THU # HÀ"


def test_escape_sequences():
    raw = (
        msh("ORU^R01", "E1").encode()
        + b"\rOBX|1|ST|X^Y||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X48C3A0\\\\.br\\g\r"
    )
    assert read_message(raw).first("OBX").get(5) == "a|b^c&d~e\\fHà\ng"


def _cp1258(text: str) -> bytes:
    """Encode like a Windows-1258 HIS: precomposed base letters (Ă Â Ê Ô Ơ Ư Đ) plus combining tone marks."""
    out = b""
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            d = unicodedata.normalize("NFD", ch)
            tones = "".join(c for c in d[1:] if c in "\u0300\u0301\u0303\u0309\u0323")
            base = unicodedata.normalize("NFC", d[0] + "".join(c for c in d[1:] if c not in tones))
            out += (base + tones).encode("cp1258")
    return out


def test_utf8_declared_and_cp1258_fallback():
    text = msh("ADT^A01", "U1") + "\rPID|1||BN1^^^BV^MR||ĐẶNG^THỊ HƯƠNG\r"
    assert read_message(text.encode("utf-8")).first("PID").get(5, 1) == "ĐẶNG"
    # Windows-1258 stores Vietnamese tone marks as combining characters (decomposed form).
    legacy = _cp1258(text.replace("|UNICODE UTF-8", "|"))
    msg = read_message(legacy)
    assert msg.charset == "cp1258" and unicodedata.normalize("NFC", msg.first("PID").get(5, 2)) == "THỊ HƯƠNG"


def test_mllp_and_bom_residue_is_tolerated():
    msg = read_message(b"\xef\xbb\xbf\x0b" + ADT_A01 + b"\x1c\r")
    assert msg.first("PID") is not None


@pytest.mark.parametrize(
    "raw,location",
    [
        (b"", "MSH"),
        (b"PID|1||X\r", "MSH"),
        (b"MSH|", "MSH-2"),
        (b"MSH|^^^^|A\r", "MSH-2"),
        (b"\x00\xff garbage \x13", "MSH"),
        (msh("ADT^A01", "G1").encode() + b"\rthis is not a segment\r", "segment 2"),
    ],
)
def test_unreadable_messages_raise_reject(raw, location):
    with pytest.raises(Hl7Error) as exc:
        read_message(raw)
    assert exc.value.ack_code == "AR" and exc.value.location == location


def test_unknown_charset_is_rejected():
    raw = ADT_A01.replace(b"UNICODE UTF-8", b"EBCDIC")
    with pytest.raises(Hl7Error) as exc:
        read_message(raw)
    assert exc.value.location == "MSH-18"


def test_batch_split():
    batch = b"FHS|^~\\&\rBHS|^~\\&\r" + ADT_A01 + ADT_A01.replace(b"ADT0001", b"ADT0009") + b"BTS|2\rFTS|1\r"
    parts = split_messages(batch)
    assert len(parts) == 2 and all(p.startswith(b"MSH|") for p in parts)
    assert read_message(parts[1]).control_id == "ADT0009"
