"""Results of `lienthong check`: findings, per-rule status, and their rich / JSON / CSV renderings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.table import Table

ERROR, WARNING = "E", "W"
CHECKED, PARTIAL, NOT_CHECKED = "checked", "partial", "not_checked"


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule at one place: file, episode, table, row (STT), field."""

    file: str
    ma_lk: str
    table: str
    stt: str
    row: int | None  # 1-based position of the record in its table (None for file-level findings)
    field: str
    rule_id: str
    severity: str  # E | W
    message_vi: str
    message_en: str
    legal_ref: str

    def message(self, lang: str = "vi") -> str:
        """The message in the chosen language (vi or en)."""
        return self.message_en if lang == "en" else self.message_vi

    def as_dict(self, lang: str = "vi") -> dict:
        """Plain-dict form (one message, in the chosen language)."""
        return {
            "file": self.file,
            "ma_lk": self.ma_lk,
            "table": self.table,
            "stt": self.stt,
            "row": self.row,
            "field": self.field,
            "rule_id": self.rule_id,
            "severity": self.severity,
            "message": self.message(lang),
            "legal_ref": self.legal_ref,
        }


@dataclass(slots=True)
class RuleStatus:
    """Whether a rule could be applied to the records of one file, and if not why."""

    rule_id: str
    severity: str
    checked: int = 0  # records (HOSO) the rule was applied to
    skipped: int = 0  # records it could not be applied to (list missing for the episode date...)
    reason_vi: str = ""
    reason_en: str = ""

    @property
    def status(self) -> str:
        """checked | partial | not_checked."""
        if self.skipped == 0:
            return CHECKED
        return PARTIAL if self.checked else NOT_CHECKED

    def reason(self, lang: str = "vi") -> str:
        """Why the rule was (partly) not checked, in the chosen language."""
        return self.reason_en if lang == "en" else self.reason_vi

    def as_dict(self, lang: str = "vi") -> dict:
        """Plain-dict form."""
        out = {"rule_id": self.rule_id, "status": self.status, "checked": self.checked}
        if self.skipped:
            out.update(skipped=self.skipped, reason=self.reason(lang))
        return out


@dataclass
class CheckReport:
    """Everything `check` found in one file."""

    file: str
    lang: str = "vi"
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    rules: dict[str, RuleStatus] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        """Number of error findings."""
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        """Number of warning findings."""
        return sum(1 for f in self.findings if f.severity == WARNING)

    def not_checked(self) -> list[RuleStatus]:
        """Rules that could not be applied to some or all records, in rule order."""
        return [s for s in self.rules.values() if s.status != CHECKED]

    def as_dict(self, lang: str | None = None) -> dict:
        """Plain-dict form of the whole report."""
        lang = lang or self.lang
        return {
            "file": self.file,
            "records": self.records,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [f.as_dict(lang) for f in self.findings],
            "rules": [s.as_dict(lang) for s in self.rules.values()],
        }


def exit_code(reports: Iterable[CheckReport], strict: bool = False) -> int:
    """0 clean, 2 when any error, 1 when only warnings and `strict` (warnings alone give 0 otherwise)."""
    reports = list(reports)
    if any(r.errors for r in reports):
        return 2
    if strict and any(r.warnings for r in reports):
        return 1
    return 0


_HEAD = {
    "vi": ("Tệp", "MA_LK", "Bảng", "STT", "Trường", "Quy tắc", "Mức", "Nội dung", "Căn cứ"),
    "en": ("File", "MA_LK", "Table", "STT", "Field", "Rule", "Sev", "Message", "Legal reference"),
}
_CSV_HEAD = ("file", "ma_lk", "table", "stt", "field", "rule_id", "severity", "message", "legal_ref")


def to_json(reports: Iterable[CheckReport], lang: str = "vi") -> str:
    """JSON document: one object per file plus totals."""
    reports = list(reports)
    doc = {
        "files": len(reports),
        "errors": sum(r.errors for r in reports),
        "warnings": sum(r.warnings for r in reports),
        "reports": [r.as_dict(lang) for r in reports],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def to_csv(reports: Iterable[CheckReport], lang: str = "vi") -> str:
    """CSV, one line per finding (header line first)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_HEAD)
    for r in reports:
        for f in r.findings:
            d = f.as_dict(lang)
            w.writerow([d[k] if d[k] is not None else "" for k in _CSV_HEAD])
    return buf.getvalue()


def findings_table(reports: Iterable[CheckReport], lang: str = "vi") -> Table:
    """A rich Table of every finding (errors in red, warnings in yellow)."""
    head = _HEAD.get(lang, _HEAD["vi"])
    title = "Kết quả kiểm tra QĐ 130" if lang != "en" else "QĐ 130 check results"
    t = Table(title=title, show_lines=False)
    for h in head:
        t.add_column(h, overflow="fold")
    for r in reports:
        for f in r.findings:
            style = "red" if f.severity == ERROR else "yellow"
            t.add_row(
                f.file,
                f.ma_lk,
                f.table,
                f.stt,
                f.field,
                f.rule_id,
                f"[{style}]{f.severity}[/{style}]",
                f.message(lang),
                f.legal_ref,
            )
    return t


def rules_table(reports: Iterable[CheckReport], lang: str = "vi") -> Table:
    """A rich Table of the rules that were not (fully) checked, with the reason, once per rule."""
    head = ("Quy tắc", "Trạng thái", "Lý do") if lang != "en" else ("Rule", "Status", "Reason")
    title = "Quy tắc chưa kiểm tra được" if lang != "en" else "Rules not checked"
    t = Table(title=title)
    for h in head:
        t.add_column(h, overflow="fold")
    seen: dict[str, RuleStatus] = {}
    for r in reports:
        for s in r.not_checked():
            seen.setdefault(s.rule_id, s)
    labels = {PARTIAL: ("một phần", "partly"), NOT_CHECKED: ("chưa kiểm tra", "not checked")}
    for rid, s in seen.items():
        vi, en = labels[s.status]
        t.add_row(rid, en if lang == "en" else vi, s.reason(lang))
    return t
