"""Ingest reports: every error and warning of a run, each naming file, MA_LK, table, row (STT) and field.

Used by `lienthong ingest`/`watch` (console summary, `--report FILE.csv|json`). Messages are already in
the reader's language (the pipeline renders them in the current language).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.i18n import _
from adapters.pipeline import IngestResult

COLUMNS = ("file", "ma_lk", "severity", "table", "stt", "field", "location", "message", "dead_letter_id")


@dataclass(frozen=True, slots=True)
class Row:
    """One error or warning of an ingest run, with everything that names its place."""

    file: str
    ma_lk: str
    severity: str  # error | warning
    table: str
    stt: str
    field: str
    location: str
    message: str
    dead_letter_id: int | None = None
    key_label: str = "MA_LK"  # what the record key is: MA_LK (QĐ130), MSH-10 (HL7 v2)

    def as_dict(self) -> dict:
        """Plain-dict form (report rows)."""
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass
class FileOutcome:
    """What happened to one file: its ingest result, or why it could not be read."""

    file: str
    result: IngestResult | None = None
    unreadable: str | None = None  # the OS error when the file could not be read
    problems: list[Row] = field(default_factory=list)

    @property
    def status(self) -> str:
        """processed | partial | failed | unreadable."""
        return "unreadable" if self.result is None else self.result.status

    @property
    def accepted(self) -> int:
        """Records written."""
        return self.result.accepted if self.result else 0

    @property
    def rejected(self) -> int:
        """Records dead-lettered."""
        return self.result.rejected if self.result else 0

    @property
    def errors(self) -> list[Row]:
        """Error problems, in file order."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Row]:
        """Warning problems, in file order."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def file_failed(self) -> bool:
        """The file as a whole could not be used (unreadable, not recognised, not well-formed...)."""
        return self.result is None or bool(self.result.errors)


_KEY_LABELS = {"qd130": "MA_LK", "hl7v2": "MSH-10"}


def _problem(
    file: str, d: dict, severity: str, ma_lk: str | None, dl: int | None = None, label: str = "MA_LK"
) -> Row:
    """A report row from an error/warning dict of the pipeline."""
    key = d.get("record_key") or ma_lk or ""
    return Row(
        file=file,
        ma_lk="" if key == "file" else key,
        severity=d.get("severity") or severity,
        table=d.get("table") or "",
        stt=str(d.get("stt") or ""),
        field=d.get("field") or "",
        location=d.get("location") or "",
        message=d.get("reason") or "",
        dead_letter_id=dl,
        key_label=label,
    )


def outcome_of(file: str, result: IngestResult) -> FileOutcome:
    """Every problem of one file's result as report rows, record by record (with their dead letters),
    then the file-level ones no record carries."""
    out = FileOutcome(file, result)
    label = _KEY_LABELS.get(result.adapter or "", "MA_LK")
    emitted: list[dict] = []
    for rec in result.records:
        for d in rec.errors:
            out.problems.append(_problem(file, d, "error", rec.key, rec.dead_letter_id, label))
            emitted.append(d)
        for d in rec.warnings:
            out.problems.append(_problem(file, d, "warning", rec.key, None, label))
    for d in result.errors:
        if d not in emitted:
            out.problems.append(_problem(file, d, "error", None, None, label))
    for d in result.warnings:
        out.problems.append(_problem(file, d, "warning", None, None, label))
    return out


def unreadable(file: str, why: str) -> FileOutcome:
    """A path that does not exist or cannot be read."""
    return FileOutcome(file, None, why, [Row(file, "", "error", "", "", "", "file", why)])


def exit_code(outcomes: Iterable[FileOutcome]) -> int:
    """0 all accepted; 1 some records rejected (dead-lettered); 2 a path missing or a file unusable."""
    outcomes = list(outcomes)
    if any(o.file_failed for o in outcomes):
        return 2
    if any(o.rejected for o in outcomes):
        return 1
    return 0


def _status_label(status: str) -> str:
    """A file status in the reader's language."""
    return {
        "processed": _("processed"),
        "partial": _("partial"),
        "failed": _("failed"),
        "unreadable": _("unreadable"),
    }.get(status, status)


def _severity_label(severity: str) -> str:
    """error/warning in the reader's language."""
    return _("error") if severity == "error" else _("warning")


def _place(p: Row) -> str:
    """'MA_LK=… XML1 STT=1 NGAY_RA', or the adapter's own location ('MSH-10=… ORC[1]-5') when the error
    does not name a table and field."""
    where = [p.table, f"STT={p.stt}" if p.stt else "", p.field] if (p.table or p.field) else [p.location]
    parts = [f"{p.key_label}={p.ma_lk}" if p.ma_lk else "", *where]
    return " ".join(x for x in parts if x and x != "file")


def write_report(path: Path, outcomes: list[FileOutcome]) -> None:
    """Every error and warning to `path`: CSV (one row per problem) or JSON (per file), by extension."""
    rows = [p.as_dict() for o in outcomes for p in o.problems]
    if path.suffix.lower() == ".json":
        doc = {
            "files": [
                {
                    "file": o.file,
                    "status": o.status,
                    "accepted": o.accepted,
                    "rejected": o.rejected,
                    "errors": [p.as_dict() for p in o.errors],
                    "warnings": [p.as_dict() for p in o.warnings],
                }
                for o in outcomes
            ],
            "exit_code": exit_code(outcomes),
        }
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    path.write_text(buf.getvalue(), encoding="utf-8")


def print_summary(
    console: Console,
    outcomes: list[FileOutcome],
    seconds: float,
    show_warnings: bool = False,
    limit: int = 50,
) -> None:
    """The run's summary: a table per file and per error on a terminal (at most `limit` error rows), plain
    untruncated lines otherwise (logs, cron mail, pipes)."""
    problems = [p for o in outcomes for p in (o.problems if show_warnings else o.errors)]
    if console.is_terminal:
        _print_tables(console, outcomes, problems, limit)
    else:
        _print_plain(console, outcomes, problems)
    accepted = sum(o.accepted for o in outcomes)
    rejected = sum(o.rejected for o in outcomes)
    warnings = sum(len(o.warnings) for o in outcomes)
    console.print(
        _(
            "{files} file(s): {accepted} record(s) accepted, {rejected} rejected, {warnings} warning(s) "
            "in {seconds:.1f}s",
            files=len(outcomes),
            accepted=accepted,
            rejected=rejected,
            warnings=warnings,
            seconds=seconds,
        ),
        soft_wrap=True,
    )


def _print_tables(console: Console, outcomes: list[FileOutcome], problems: list[Row], limit: int) -> None:
    """Rich tables (terminal): files that need attention (all files when few), then the problems."""
    shown = [o for o in outcomes if o.status != "processed" or len(outcomes) <= 50]
    if shown:
        t = Table(title=_("Ingest summary"))
        for col in (_("file"), _("status"), _("accepted"), _("rejected"), _("warnings")):
            t.add_column(col, overflow="fold")
        for o in shown:
            t.add_row(o.file, _status_label(o.status), str(o.accepted), str(o.rejected), str(len(o.warnings)))
        console.print(t)
    if problems:
        t = Table(title=_("Errors"))
        for col in (_("file"), "MA_LK", _("table"), "STT", _("field"), _("severity"), _("message")):
            t.add_column(col, overflow="fold")
        for p in problems[:limit]:
            style = "red" if p.severity == "error" else "yellow"
            t.add_row(
                Path(p.file).name,
                p.ma_lk,
                p.table,
                p.stt,
                p.field or (p.location if not p.table else ""),
                f"[{style}]{_severity_label(p.severity)}[/{style}]",
                p.message,
            )
        console.print(t)
        if len(problems) > limit:
            console.print(
                _("… and {count} more; write them all with --report FILE.csv", count=len(problems) - limit)
            )


def _print_plain(console: Console, outcomes: list[FileOutcome], problems: list[Row]) -> None:
    """One line per file and one per problem, never cut (console width does not apply)."""
    by_file: dict[str, list[Row]] = {}
    for p in problems:
        by_file.setdefault(p.file, []).append(p)
    for o in outcomes:
        line = _(
            "{file}: {status}, {accepted} accepted, {rejected} rejected, {warnings} warning(s)",
            file=o.file,
            status=_status_label(o.status),
            accepted=o.accepted,
            rejected=o.rejected,
            warnings=len(o.warnings),
        )
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        for p in by_file.get(o.file, []):
            place = _place(p)
            console.print(
                f"  {_severity_label(p.severity).upper()}  {place + ': ' if place else ''}{p.message}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


def render_text(outcomes: list[FileOutcome], seconds: float = 0.0) -> str:
    """The plain summary as text (what a pipe or log file gets)."""
    buf = io.StringIO()
    print_summary(Console(file=buf, force_terminal=False, width=100000), outcomes, seconds)
    return buf.getvalue()
