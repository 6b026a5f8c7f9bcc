"""Precise HL7 v2 problems, each carrying the ACK code and HL7 error code (table 0357) it maps to."""

from __future__ import annotations

from adapters.base import RecordError

# Table 0357 codes used in ERR-3.
ACCEPTED = "0"  # with severity W: the message was stored, something in it was not (unmapped segment)
SEGMENT_SEQUENCE = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT = "201"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
INTERNAL_ERROR = "207"


class Hl7Error(Exception):
    """A message that cannot be processed: AR when unreadable/unsupported, AE when the content is wrong."""

    def __init__(self, ack_code: str, hl7_code: str, location: str, reason: str):
        super().__init__(f"{location}: {reason}")
        self.ack_code = ack_code
        self.hl7_code = hl7_code
        self.location = location
        self.reason = reason

    def record_error(self, record_key: str | None = None) -> RecordError:
        """The same problem as a RecordError for the generic pipeline and dead letters."""
        return RecordError(
            location=self.location,
            reason=f"[{self.ack_code} {self.hl7_code}] {self.reason}",
            record_key=record_key,
        )


def reject(hl7_code: str, location: str, reason: str) -> Hl7Error:
    """AR: unparseable, unsupported type/version, or otherwise not processable at all."""
    return Hl7Error("AR", hl7_code, location, reason)


def content_error(hl7_code: str, location: str, reason: str) -> Hl7Error:
    """AE: a well-formed message whose content is wrong (missing key, bad value)."""
    return Hl7Error("AE", hl7_code, location, reason)


def warning(hl7_code: str, location: str, reason: str, record_key: str | None = None) -> RecordError:
    """A problem that did not stop the message: tagged "[W <table 0357 code>]" for the ACK's ERR (severity W)."""
    return RecordError(
        location=location, reason=f"[W {hl7_code}] {reason}", record_key=record_key, severity="warning"
    )
