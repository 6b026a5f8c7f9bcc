"""HL7 ACK messages (MSH + MSA + ERR) in original acknowledgement mode: AA / AE / AR."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from adapters.hl7v2.er7 import Message

_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")
# Control bytes would break the ACK's segments or its MLLP frame (FS + CR inside an echoed MSH-18
# ended the frame early: found by the parser fuzz run); they never belong in an ACK's text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_V25 = ("2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2")


@dataclass
class AckError:
    """One ERR segment: HL7 error code (table 0357), location like "PID-3" or "OBX[2]-5", reason."""

    code: str
    location: str
    reason: str
    severity: str = "E"


@dataclass
class Header:
    """The original message's MSH facts an ACK echoes (works even when the message was unreadable)."""

    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset: str = ""

    @classmethod
    def from_message(cls, msg: Message) -> "Header":
        """Header of a message that was read."""
        m = msg.msh
        return cls(
            m.get(3),
            m.get(4),
            m.get(5),
            m.get(6),
            msg.trigger,
            msg.control_id,
            m.get(11) or "P",
            msg.version or "2.5",
            m.get(18),
        )

    @classmethod
    def sniff(cls, raw: bytes) -> "Header":
        """Best effort from raw bytes whose MSH could not be read: plain '|' splitting of the first line."""
        start = raw.find(b"MSH")
        if start < 0:
            return cls()
        line = raw[start:].split(b"\r")[0].split(b"\n")[0].decode("utf-8", "replace")
        sep = line[3:4] or "|"
        f = line.split(sep)

        def at(n: int) -> str:
            return f[n - 1].split("^")[0].strip() if 1 < n <= len(f) else ""

        trigger = f[8].split("^")[1] if len(f) > 8 and "^" in f[8] else ""
        version = at(12)
        return cls(
            at(3),
            at(4),
            at(5),
            at(6),
            trigger[:3],
            at(10)[:199],
            at(11) or "P",
            version if re.fullmatch(r"2\.\d(\.\d)?", version or "") else "2.5",
            at(18),
        )


def escape(text: str) -> str:
    """Escape separators for the standard encoding characters |^~\\&."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return _CONTROL.sub(" ", out.replace("~", "\\R\\"))


def _ts(tz_hours: int = 7) -> str:
    now = datetime.now(timezone(timedelta(hours=tz_hours)))
    return now.strftime("%Y%m%d%H%M%S") + f"{'+' if tz_hours >= 0 else '-'}{abs(tz_hours):02d}00"


def _err_segment(err: AckError, version: str) -> str:
    m = _LOCATION.match(err.location or "")
    seg, seq, fld = (m.group(1), m.group(2) or "1", m.group(3) or "") if m else ("", "", "")
    text = escape(err.reason)[:200]
    if version in _V25:
        return (
            f"ERR||{seg}^{seq if seg else ''}^{fld}|{err.code}^{escape(_CODE_TEXT.get(err.code, 'Error'))}"
            f"^HL70357|{err.severity}||||{text}"
        )
    return f"ERR|{seg}^{seq if seg else ''}^{fld}^{err.code}&{text}&HL70357"


_CODE_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def build_ack(header: Header, code: str, errors: list[AckError] | None = None, text: str = "") -> bytes:
    """ACK^<trigger>^ACK answering the header's MSH-10 with MSA-1 = code (AA/AE/AR); UTF-8 bytes."""
    errors = errors or []
    charset = (
        "UNICODE UTF-8"
        if header.charset.upper().replace("-", "").endswith("UTF8") or not header.charset
        else escape(header.charset)
    )
    trigger = escape(header.trigger)
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            escape(header.receiving_app),
            escape(header.receiving_facility),
            escape(header.sending_app),
            escape(header.sending_facility),
            _ts(),
            "",
            f"ACK^{trigger}^ACK" if trigger else "ACK",
            escape(f"ACK{header.control_id}"[:199]),
            escape(header.processing_id),
            escape(header.version),
            "",
            "",
            "",
            "",
            "",
            charset,
        ]
    )
    # MSA-3 names the first error; warnings (severity W) only travel in ERR segments.
    msa_text = escape(text or next((e.reason for e in errors if e.severity == "E"), ""))[:80]
    segments = [msh, f"MSA|{code}|{escape(header.control_id)}" + (f"|{msa_text}" if msa_text else "")]
    segments += [_err_segment(e, header.version) for e in errors]
    return ("\r".join(segments) + "\r").encode("utf-8")
