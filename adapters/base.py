"""The plug-in contract every adapter implements: sniff, parse into source records, map to FHIR."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fhir_server.i18n import SOURCE, Localized


@dataclass
class RecordError:
    """One precise problem: where it is (table/row/field or segment/field) and why it is wrong.

    `location` is the compact path ("XML2/CHI_TIET_THUOC[3]/DON_GIA", "PID-7"); `table`, `stt` (the
    row's own STT) and `field` name the same place for reports. `reason` is English; `message`, when
    set, renders it in the reader's language (fhir_server.i18n)."""

    location: str
    reason: str
    record_key: str | None = None
    severity: str = "error"  # error | warning
    table: str | None = None
    stt: str | None = None
    field: str | None = None
    message: Localized | None = None

    @classmethod
    def of(
        cls,
        message: Localized,
        location: str,
        record_key: str | None = None,
        severity: str = "error",
        *,
        table: str | None = None,
        stt: str | None = None,
        field: str | None = None,
    ) -> RecordError:
        """An error whose reason is a translatable message (the English text becomes `reason`)."""
        return cls(location, str(message), record_key, severity, table, stt, field, message)

    def text(self, lang: str | None = None) -> str:
        """The reason in `lang` (the current language when None)."""
        return self.message.render(lang) if self.message is not None else self.reason

    def as_dict(self, lang: str | None = None) -> dict:
        """Plain-dict form for JSON responses, reports and dead-letter rows (reason in `lang`, default
        English); the structured place (table, stt, field) and the message id come along when known."""
        out: dict = {
            "location": self.location,
            "reason": self.text(lang or SOURCE),
            "record_key": self.record_key,
            "severity": self.severity,
        }
        if self.table:
            out["table"] = self.table
        if self.stt:
            out["stt"] = self.stt
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class SourceRecord:
    """One unit of source data that maps to one FHIR transaction (a QĐ130 HOSO, an HL7 message)."""

    key: str  # MA_LK, MSH-10, ...: names the record in errors and dead letters
    payload: bytes  # the record's own raw bytes, enough to replay it alone
    data: Any  # the adapter's parsed form
    meta: dict = field(default_factory=dict)


@dataclass
class ParseResult:
    """Records that parsed, and errors for what did not (file-level or per record)."""

    records: list[SourceRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


@dataclass
class MappedRecord:
    """A source record mapped to one FHIR transaction Bundle, or the errors that prevented it."""

    key: str
    bundle: dict | None
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    # The source's own time of this snapshot (FHIR dateTime: QĐ130 visit end, HL7 v2 MSH-7): an older
    # snapshot never overwrites a newer one (fhir_server/storage/snapshot.py). None: no such rule.
    source_time: str | None = None


@runtime_checkable
class Adapter(Protocol):
    """An input format plug-in, registered under the `lienthong.adapters` entry-point group."""

    name: str  # entry-point name, e.g. "qd130"
    channel: str  # archive channel, e.g. "qd130", "hl7v2"
    description: str

    def sniff(self, payload: bytes, content_type: str | None = None) -> bool:
        """Say whether this payload is in this adapter's format (cheap: look at the first bytes)."""
        ...

    def parse(self, payload: bytes, options: dict | None = None) -> ParseResult:
        """Split the payload into source records; never raise on bad input, report RecordErrors."""
        ...

    def to_fhir(self, record: SourceRecord, options: dict | None = None) -> MappedRecord:
        """Map one source record to one FHIR R4 transaction Bundle with deterministic ids."""
        ...
