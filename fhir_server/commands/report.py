"""`lienthong report …`: health-department summaries on the command line (table, CSV, XLSX), the Measure
resources, and a rebuild of the visit facts; progress on the terminal (rich)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fhir_server.errors import FhirError
from fhir_server.i18n import _, current_lang
from fhir_server.reports import summary
from fhir_server.reports.measures import measure_resource
from fhir_server.settings import Settings

console = Console()


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `report` command group to the lienthong CLI."""
    group = typer.Typer(
        help=_("Summaries for health departments (visits, admissions, diagnoses…)."), no_args_is_help=True
    )
    app.add_typer(group, name="report")

    def runtime(db: str | None):
        return open_runtime(Settings.from_env().with_(database_url=db))

    @group.command("show", help=_("Print or save one summary, grouped by the given stratifiers."))
    def show_cmd(
        measure_id: str = typer.Argument(..., help=", ".join(summary.CATALOG)),
        by: str = typer.Option(
            "province-new", "--by", help=_("stratifiers joined by '+', e.g. province-new+month")
        ),
        start: str = typer.Option(None, "--from", help=_("first day (YYYY-MM-DD)")),
        end: str = typer.Option(None, "--to", help=_("last day (YYYY-MM-DD)")),
        top: int = typer.Option(None, "--top", help=_("only the N largest rows (e.g. top diagnoses)")),
        out: Path = typer.Option(None, "--out", help=_("write a .csv or .xlsx file instead of a table")),
        min_cell: int = typer.Option(
            None, "--min-cell", help=_("smallest count published (default LIENTHONG_REPORT_MIN_CELL)")
        ),
        db: str = typer.Option(None, "--db", help=_("database URL")),
    ) -> None:
        """One summary as a table, CSV or XLSX."""
        try:
            m = summary.measure(measure_id)
            (dims,) = summary.parse_stratifiers(by.replace(",", "+")) or [[]]
        except FhirError as exc:
            console.print(
                exc.localized(current_lang())["issue"][0]["diagnostics"], markup=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        rt = runtime(db)
        cell = min_cell if min_cell is not None else rt.settings.report_min_cell
        with console.status(_("computing {measure}…", measure=m.id)):
            rows = summary.summarize(rt.store.reports, m, dims, (start, end), None, cell, top)
        columns = [*dims, "value"] + (["denominator"] if m.scoring == "continuous-variable" else [])
        if out is not None:
            if out.suffix.lower() == ".xlsx":
                out.write_bytes(summary.to_xlsx(rows, columns, m.id))
            else:
                out.write_text(summary.to_csv(rows, columns, cell), encoding="utf-8")
            console.print(
                _("{count} row(s) written to {path}", count=len(rows), path=str(out)), soft_wrap=True
            )
            return
        table = Table(title=f"{m.title_vi} / {m.title_en}")
        for col in columns:
            table.add_column(col)
        withheld = f"<{cell}"
        for r in rows:
            table.add_row(
                *[
                    withheld if r.get(c) is None and c in ("value", "denominator") else str(r.get(c) or "")
                    for c in columns
                ]
            )
        console.print(table)
        console.print(
            _("counts below {n} are withheld, and a few larger ones so totals do not reveal them", n=cell)
        )

    @group.command("rebuild", help=_("Recompute the visit facts of every Encounter (after a bulk load)."))
    def rebuild_cmd(db: str = typer.Option(None, "--db", help=_("database URL"))) -> None:
        """Recompute every fact row, with a progress bar."""
        from fhir_server.reports.hook import rebuild
        from fhir_server.reports.reexam import reexam_rule

        rt = runtime(db)
        store = rt.store
        total = store.count_current("Encounter")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(_("visit facts"), total=total)
            count = rebuild(store, progress=lambda n: bar.advance(task, n), rule=reexam_rule(rt.settings))
        console.print(_("{count} visit(s) summarised", count=count))

    @group.command("measures", help=_("Store the Measure resources of the summaries (GET [base]/Measure)."))
    def measures_cmd(db: str = typer.Option(None, "--db", help=_("database URL"))) -> None:
        """PUT one Measure per catalogue entry."""
        from fhir_server.interactions.bundles import transaction

        entries = [
            {"resource": measure_resource(m), "request": {"method": "PUT", "url": f"Measure/{m.id}"}}
            for m in summary.CATALOG.values()
        ]
        transaction(runtime(db).store, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
        console.print(_("{count} Measure(s) stored", count=len(entries)))
