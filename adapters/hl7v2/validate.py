"""hl7apy-backed checks: supported version, message structure, known segments, optional full parse."""

from __future__ import annotations

from functools import lru_cache

import hl7apy
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from adapters.base import RecordError
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import (
    ACCEPTED,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE,
    UNSUPPORTED_EVENT,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION,
    reject,
    warning,
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


def hl7apy_version(version: str) -> str:
    """The hl7apy table used for an accepted version (2.7.1 -> 2.7, messages.yaml hl7apy_version)."""
    return message_table().get("hl7apy_version", {}).get(version, version)


def check_supported(msg: Message) -> tuple[dict, list[RecordError]]:
    """Raise AR for a missing control id, unsupported version or message type; return the messages.yaml
    row and warnings (a structure the version does not define is a warning: the content still maps)."""
    table = message_table()
    if not msg.control_id:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-10", "message control id missing")
    version = msg.version
    if version not in table["versions"] or hl7apy_version(version) not in hl7apy.SUPPORTED_LIBRARIES:
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
    warnings = []
    structure = msg.structure or row["structure"]
    lib = hl7apy_version(version)
    if not _structure_known(structure, lib) and not _structure_known(row["structure"], lib):
        warnings.append(
            warning(
                ACCEPTED,
                "MSH-9.3",
                f"message structure {structure} is not defined in HL7 v{version}; read as {row['structure']}",
                msg.control_id,
            )
        )
    return row, warnings


def segment_warnings(msg: Message) -> tuple[list[RecordError], set[str]]:
    """Warn (never fail) about non-Z segments that this HL7 version does not define; also return their names."""
    out = []
    unknown: set[str] = set()
    lib = hl7apy_version(msg.version)
    for seg in msg.segments:
        if seg.name[0] != "Z" and seg.name not in unknown and not _segment_known(seg.name, lib):
            unknown.add(seg.name)
            out.append(
                warning(
                    ACCEPTED,
                    f"segment {seg.index + 1}",
                    f"unknown segment {seg.name} ignored",
                    msg.control_id,
                )
            )
    return out, unknown


def hl7apy_parse(msg: Message) -> None:
    """Full hl7apy parse (validation level tolerant) of the non-Z segments; raise AR with hl7apy's reason."""
    lines = [line for line in msg.text.split("\r") if line and not line.startswith("Z")]
    lib = hl7apy_version(msg.version)
    if lib != msg.version:  # e.g. 2.7.1: parse with the nearest table hl7apy ships
        lines[0] = lines[0].replace(f"{msg.encoding.field}{msg.version}", f"{msg.encoding.field}{lib}", 1)
    text = "\r".join(lines) + "\r"
    try:
        parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except Exception as exc:  # hl7apy signals every problem with its own exception classes
        raise reject(SEGMENT_SEQUENCE, "message", f"hl7apy: {type(exc).__name__}: {exc}") from None
