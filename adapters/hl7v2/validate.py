"""hl7apy-backed checks: supported version, message structure, known segments, optional full parse."""

from __future__ import annotations

from functools import lru_cache

import hl7apy
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from adapters.base import RecordError
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import (
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE,
    UNSUPPORTED_EVENT,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION,
    reject,
)
from mappings import load_yaml


@lru_cache(maxsize=None)
def message_table() -> dict:
    """mappings/hl7v2/messages.yaml (cached)."""
    return load_yaml("hl7v2/messages.yaml")


@lru_cache(maxsize=None)
def _structure_known(structure: str, version: str) -> bool:
    try:
        hl7apy.load_reference(structure, "Message", version)
        return True
    except Exception:  # hl7apy raises ChildNotFound/KeyError/InvalidName depending on the element
        return False


@lru_cache(maxsize=None)
def _segment_known(name: str, version: str) -> bool:
    try:
        hl7apy.load_reference(name, "Segment", version)
        return True
    except Exception:
        return False


def check_supported(msg: Message) -> dict:
    """Raise AR for a missing control id, unsupported version or message type; return the messages.yaml row."""
    table = message_table()
    if not msg.control_id:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-10", "message control id missing")
    version = msg.version
    if version not in table["versions"] or version not in hl7apy.SUPPORTED_LIBRARIES:
        raise reject(
            UNSUPPORTED_VERSION,
            "MSH-12",
            f"unsupported HL7 version {version!r}; supported: " + ", ".join(table["versions"]),
        )
    if not msg.message_code or not msg.trigger:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-9", "message type/trigger event missing")
    row = table["messages"].get(f"{msg.message_code}^{msg.trigger}")
    if row is None:
        known_codes = {k.split("^")[0] for k in table["messages"]}
        code = UNSUPPORTED_EVENT if msg.message_code in known_codes else UNSUPPORTED_MESSAGE_TYPE
        raise reject(code, "MSH-9", f"unsupported message type {msg.message_code}^{msg.trigger}")
    structure = msg.structure or row["structure"]
    if not _structure_known(structure, version) and not _structure_known(row["structure"], version):
        raise reject(
            UNSUPPORTED_MESSAGE_TYPE,
            "MSH-9.3",
            f"message structure {structure} is not defined in HL7 v{version}",
        )
    return row


def segment_warnings(msg: Message) -> list[RecordError]:
    """Warn (never fail) about non-Z segments that this HL7 version does not define."""
    out = []
    for i, seg in enumerate(msg.segments, start=1):
        if seg.name[0] != "Z" and not _segment_known(seg.name, msg.version):
            out.append(
                RecordError(
                    location=f"segment {i}",
                    reason=f"unknown segment {seg.name} ignored",
                    record_key=msg.control_id,
                    severity="warning",
                )
            )
    return out


def hl7apy_parse(msg: Message) -> None:
    """Full hl7apy parse (validation level tolerant) of the non-Z segments; raise AR with hl7apy's reason."""
    lines = [line for line in msg.text.split("\r") if line and not line.startswith("Z")]
    text = "\r".join(lines) + "\r"
    try:
        parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except Exception as exc:  # hl7apy signals every problem with its own exception classes
        raise reject(SEGMENT_SEQUENCE, "message", f"hl7apy: {type(exc).__name__}: {exc}") from None
