"""`lienthong check FILE|DIR`: the agency-style QĐ130 check before sending (engine: check.py).

Exit code: 2 when any error, 1 when only warnings and --strict, 0 otherwise (check_report.exit_code).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapters.i18n import _
from fhir_server.i18n import current_lang

console = Console()
FORMATS = ("table", "json", "csv")


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `check` command (it needs no database; `open_runtime` is not used)."""

    @app.command(
        "check",
        help=_(
            "Check QĐ130 files against the insurance agency's rules before sending: every finding names "
            "file, MA_LK, table, STT, field and rule. Exit code: 2 errors, 1 warnings only with --strict, "
            "0 clean."
        ),
    )
    def check_cmd(
        paths: list[Path] = typer.Argument(..., help=_("QĐ130 files or folders (*.xml, recursive)")),
        fmt: str = typer.Option("table", "--format", "-f", help="table | json | csv"),
        out: Path = typer.Option(None, "--out", "-o", help=_("write the report to this file")),
        strict: bool = typer.Option(False, "--strict", help=_("warnings alone give exit code 1")),
        rules: bool = typer.Option(
            True, "--rules/--no-rules", help=_("list the rules that could not be checked (table format)")
        ),
    ) -> None:
        """Check QĐ130 files; report as a table, JSON or CSV; exit code 0/1/2."""
        from .check import check_paths
        from .check_report import exit_code, to_csv, to_json

        if fmt not in FORMATS:
            raise typer.BadParameter(_("--format must be one of {formats}", formats=", ".join(FORMATS)))
        lang = current_lang()
        # A path that does not exist or cannot be read is a QD130-FILE-001 error in the report.
        reports = check_paths(paths, lang=lang)
        if fmt == "json":
            _emit(to_json(reports, lang), out)
        elif fmt == "csv":
            _emit(to_csv(reports, lang), out)
        elif out is not None:
            with out.open("w", encoding="utf-8") as fh:
                _print_tables(Console(file=fh, width=200), reports, lang, rules)
        else:
            _print_tables(console, reports, lang, rules)
        raise typer.Exit(code=exit_code(reports, strict))


def _print_tables(target: Console, reports: list, lang: str, rules: bool) -> None:
    """Findings per file (a table on a terminal, one plain line each otherwise), the rules that could
    not be checked, and the totals line. The legal reference of each finding is in --format json|csv."""
    from .check_report import rules_table

    for r in reports:
        if not r.findings:
            continue
        if target.is_terminal:
            t = Table(title=r.file, title_justify="left")
            for col in ("MA_LK", _("table"), "STT", _("field"), _("rule"), _("severity"), _("message")):
                t.add_column(col, overflow="fold")
            for f in r.findings:
                style = "red" if f.severity == "E" else "yellow"
                sev = f"[{style}]{f.severity}[/{style}]"
                t.add_row(f.ma_lk, f.table, f.stt, f.field, f.rule_id, sev, f.message(lang))
            target.print(t)
        else:
            target.print(r.file, markup=False, highlight=False, soft_wrap=True)
            for f in r.findings:
                place = " ".join(
                    x
                    for x in (
                        f"MA_LK={f.ma_lk}" if f.ma_lk else "",
                        f.table,
                        f"STT={f.stt}" if f.stt else "",
                        f.field,
                    )
                    if x
                )
                target.print(
                    f"  {f.severity} {f.rule_id}  {place}: {f.message(lang)}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    if rules and any(r.not_checked() for r in reports):
        target.print(rules_table(reports, lang), soft_wrap=not target.is_terminal)
    target.print(
        _(
            "{files} file(s), {records} record(s): {errors} error(s), {warnings} warning(s)",
            files=len(reports),
            records=sum(r.records for r in reports),
            errors=sum(r.errors for r in reports),
            warnings=sum(r.warnings for r in reports),
        ),
        soft_wrap=True,
    )


def _emit(text: str, out: Path | None) -> None:
    """Write a JSON/CSV report to a file, or to stdout unchanged (no console markup or wrapping)."""
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text, encoding="utf-8")
