"""`lienthong facilities load FILE` / `facilities list`: the department's facility registry (MA_CSKCB).

`load` validates the CSV (mappings/facilities.py), reports every rejected row, and writes one Organization
per valid row (same id and shape as the adapters write, adapters/facility.py), so the clinician view and
searches show the names at once. Ingest processes read the same CSV at start when LIENTHONG_FACILITIES_CSV
names it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapters.facility import organization
from adapters.i18n import _
from fhir_server.i18n import current_lang
from fhir_server.settings import Settings
from mappings import facilities, profile_set

console = Console()


def organizations_bundle(rows: list[facilities.Facility], profile: str = "hl7vn") -> dict:
    """A transaction Bundle that PUTs the Organization of each facility (registry name, level, province)."""
    system = profile_set(profile)["identifier_systems"]["facility"]
    entries = []
    for row in rows:
        org = organization(row.ma_cskcb, system, row.name)
        entries.append({"resource": org, "request": {"method": "PUT", "url": f"Organization/{org['id']}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `facilities` command group to the lienthong CLI."""
    group = typer.Typer(
        help=_("The facility registry (MA_CSKCB → name, level, province)."), no_args_is_help=True
    )
    app.add_typer(group, name="facilities")

    @group.command("load", help=_("Check a facility CSV and write one Organization per valid row."))
    def load_cmd(
        path: Path = typer.Argument(..., help=_("CSV file (columns: ma_cskcb,name,level,tuyen,hang,…)")),
        db: str = typer.Option(None, "--db", help=_("database URL")),
        profile: str = typer.Option("hl7vn", "--profile-set", help="hl7vn | ehealth"),
    ) -> None:
        """Validate the CSV, report rejected rows, write the valid ones as Organizations."""
        from fhir_server.interactions.bundles import transaction

        if not path.is_file():
            console.print(_("no such file: {path}", path=str(path)), soft_wrap=True)
            raise typer.Exit(code=2)
        rows, errors = facilities.load_csv(path)
        vi = current_lang() == "vi"
        for err in errors:
            console.print(
                _(
                    "line {line}, column {column}: {why}",
                    line=err.line,
                    column=err.column,
                    why=err.vi if vi else err.en,
                ),
                markup=False,
                soft_wrap=True,
            )
        if rows:
            facilities.merge(rows)  # organization() reads level and province from the registry
            store = open_runtime(Settings.from_env().with_(database_url=db)).store
            transaction(store, organizations_bundle(rows, profile))
        console.print(
            _("{ok} facility(ies) loaded, {bad} row(s) rejected", ok=len(rows), bad=len(errors)),
            soft_wrap=True,
        )
        if errors:
            raise typer.Exit(code=1)

    @group.command("list", help=_("List the known facilities (shipped and department rows)."))
    def list_cmd() -> None:
        """Print the registry as a table."""
        table = Table()
        for col in ("MA_CSKCB", _("name"), _("level"), _("province (old)"), _("province (new)")):
            table.add_column(col, overflow="fold")
        for f in facilities.all_facilities():
            table.add_row(f.ma_cskcb, f.name, f.level, f.province_old, f.province_new)
        console.print(table)
