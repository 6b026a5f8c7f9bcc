"""The properties every parser fuzz case must hold, shared by the suite (test_parser_fuzz.py) and the
long run (`bench/fuzz_parsers.py`). Each check raises AssertionError naming what broke and returns a
short outcome label for the counts."""

from __future__ import annotations

import orjson

from adapters.base import RecordError
from adapters.hl7v2.ack import AckError, build_ack
from adapters.hl7v2.plugin import Hl7v2Adapter
from adapters.qd130.plugin import Qd130Adapter
from tests.adapters.fuzz.hl7v2_inputs import Hl7Case
from tests.adapters.fuzz.qd130_inputs import Qd130Case

QD130 = Qd130Adapter()
HL7V2 = Hl7v2Adapter()
# Locations the adapters use when their own code failed instead of the input: never a precise reason.
CRASH_LOCATIONS = {"mapping", "pipeline", "unknown"}


def precise(error: RecordError | dict) -> None:
    """An error names a place and a reason, and is not an adapter crash in disguise."""
    d = error.as_dict() if isinstance(error, RecordError) else error
    assert d["location"] and d["reason"], d
    assert d["location"] not in CRASH_LOCATIONS, d
    assert "[AR 207]" not in d["reason"] and "[AE 207]" not in d["reason"], d


def qd130_parse(case: Qd130Case, check: bool = True) -> str:
    """Parse and map a file the way ingest does; every record is accepted or rejected precisely, each
    record's own payload re-parses to that record alone (what a dead-letter replay runs), and the
    witness HOSO is accepted when the mutations stayed inside the victim."""
    parsed = QD130.parse(case.payload, {"check": check})
    for e in parsed.errors:
        precise(e)
    reasons = [e.reason for e in parsed.errors]
    accepted = set()
    for rec in parsed.records:
        mapped = QD130.to_fhir(rec, {})
        for e in mapped.errors:
            precise(e)
        reasons += [e.reason for e in mapped.errors]
        # An external entity or XInclude is never resolved into the data.
        out = orjson.dumps(mapped.bundle)
        assert b"root:x:0:0" not in out and b"a" * 100 not in out, rec.key
        assert (mapped.bundle is None) == bool(mapped.errors), rec.key
        if mapped.bundle is not None:
            accepted.add(rec.key)
        if len(parsed.records) > 1:
            alone = QD130.parse(rec.payload, {"check": check})
            assert [r.key for r in alone.records] == [rec.key], (rec.key, [e.reason for e in alone.errors])
            assert [e.reason for e in alone.records[0].data.errors] == [e.reason for e in rec.data.errors]
    if case.dtd:
        assert any("DTD" in r for r in reasons), reasons
    if case.witness_key:
        assert case.witness_key in accepted, (case.witness_key, [e.reason for e in parsed.errors])
    if not parsed.records:
        return "file refused"
    return "all accepted" if len(accepted) == len(parsed.records) else "some rejected"


def qd130_check(case: Qd130Case) -> str:
    """The agency-style check (`lienthong check`, POST /qd130/$check) reports on any file, never raises."""
    from adapters.qd130.check import check_bytes
    from adapters.qd130.check_report import exit_code

    report = check_bytes(case.payload, "fuzz.xml", "vi")
    report.as_dict("vi")
    return f"exit {exit_code([report])}"


def hl7_parse(case: Hl7Case) -> str:
    """Parse and map a message; bad input only ever becomes a tagged [AE|AR code] error, and the ACK
    that answers it (echoing the sender's MSH and the reasons) is a well-formed, frameable ACK."""
    from adapters.hl7v2.processor import _header  # the listener's own header reading (falls back to sniffing)

    parsed = HL7V2.parse(case.payload, {})
    errors = list(parsed.errors)
    labels = []
    for rec in parsed.records:
        mapped = HL7V2.to_fhir(rec, {})
        errors += mapped.errors
        orjson.dumps(mapped.bundle)  # what the store writes: a value JSON cannot hold fails every record
        labels.append("accepted" if mapped.bundle is not None else "rejected")
    for e in errors:
        precise(e)
    assert parsed.records or parsed.errors
    ack = build_ack(_header(case.payload), "AE", [AckError("102", e.location, e.reason) for e in errors])
    ack_segments(ack)
    return "refused" if not parsed.records else ("accepted" if set(labels) == {"accepted"} else "rejected")


def ack_segments(ack: bytes) -> dict[str, list[str]]:
    """An ACK's segments by name; asserts it is a well-formed, frameable ACK."""
    assert b"\x0b" not in ack and b"\x1c" not in ack, ack[:300]
    text = ack.decode("utf-8")
    segs = [s for s in text.split("\r") if s]
    assert segs and segs[0].startswith("MSH|^~\\&|"), ack[:300]
    by: dict[str, list[str]] = {}
    for s in segs:
        assert s[:3].isalnum() and s[3:4] == "|", (s[:40], ack[:300])
        by.setdefault(s[:3], []).append(s)
    assert len(by.get("MSA", [])) == 1, ack[:300]
    assert by["MSA"][0].split("|")[1] in ("AA", "AE", "AR"), ack[:300]
    return by


def ack_code(ack: bytes) -> str:
    """MSA-1."""
    return ack_segments(ack)["MSA"][0].split("|")[1]
