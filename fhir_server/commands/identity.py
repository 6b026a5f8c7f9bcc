"""`lienthong link`, `lienthong review …` and `lienthong unlink` commands."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.table import Table

from fhir_server.settings import Settings

console = Console()
_DB = typer.Option(None, "--db", help="Database URL (env LIENTHONG_DATABASE_URL)")


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the identity commands to the main CLI."""

    def _store(db: str | None):
        return open_runtime(Settings.from_env().with_(database_url=db)).store

    review = typer.Typer(help="Review queue of uncertain patient matches.", no_args_is_help=True)

    @app.command("link")
    def link(
        all_: bool = typer.Option(False, "--all", help="Re-link every Patient in the store"),
        patient: str = typer.Option(None, "--patient", help="Link one Patient id"),
        db: str = _DB,
    ) -> None:
        """Link Patient records of the same person across hospitals."""
        from fhir_server.identity import service

        if not all_ and not patient:
            raise typer.BadParameter("give --all or --patient ID")
        store = _store(db)
        with console.status("linking…"):
            result = service.link_all(store) if all_ else service.link_patient(store, patient)
        console.print(result)

    @review.command("list")
    def review_list(
        status: str = typer.Option("pending", help="pending | accepted | rejected"),
        limit: int = typer.Option(50),
        db: str = _DB,
    ) -> None:
        """Show queued pairs (ids, score and agreeing fields only: no names are printed)."""
        from fhir_server.identity import service

        table = Table("id", "patient A", "patient B", "score", "features", "reason")
        for item in service.review_list(_store(db), status, limit):
            feats = ", ".join(f"{k}={v}" for k, v in item["features"].items())
            table.add_row(
                str(item["review_id"]),
                item["patient_a"],
                item["patient_b"],
                f"{item['score'] or 0:.1f}",
                feats,
                item.get("reason") or "",
            )
        console.print(table)

    @review.command("accept")
    def review_accept(
        review_id: int, by: str = typer.Option(None, help="Reviewer name"), db: str = _DB
    ) -> None:
        """Accept a queued pair (links the two Patients)."""
        from fhir_server.identity import service

        console.print(service.review_accept(_store(db), review_id, by))

    @review.command("reject")
    def review_reject(
        review_id: int, by: str = typer.Option(None, help="Reviewer name"), db: str = _DB
    ) -> None:
        """Reject a queued pair (they will not be linked automatically)."""
        from fhir_server.identity import service

        console.print(service.review_reject(_store(db), review_id, by))

    @app.command("unlink")
    def unlink(patient: str, by: str = typer.Option(None, help="Who undoes the link"), db: str = _DB) -> None:
        """Take a Patient out of its link set."""
        from fhir_server.identity import service

        console.print(service.undo_link(_store(db), patient, by))

    app.add_typer(review, name="review")
