"""`lienthong link`, `lienthong review …` and `lienthong unlink` commands."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.table import Table

from fhir_server.i18n import _
from fhir_server.settings import Settings

console = Console()


def _labels() -> dict[str, str]:
    """Names of the counts the identity service returns, in the reader's language."""
    return {
        "patients": _("Patient records compared"),
        "pairs_scored": _("pairs scored"),
        "links": _("links (same person)"),
        "link_sets_changed": _("persons changed"),
        "queued": _("pairs queued for review"),
        "patient": _("Patient"),
        "person": _("person"),
        "linked": _("linked with"),
        "unlinked_from": _("unlinked from"),
        "review_id": _("review id"),
        "patient_a": _("patient A"),
        "patient_b": _("patient B"),
        "score": _("score"),
        "status": _("status"),
        "decided_by": _("decided by"),
    }


def summary_table(title: str, result: dict) -> Table:
    """A two-column table of a service result (lists joined, nested dicts as key=value)."""
    labels = _labels()
    t = Table(title=title, show_header=False)
    t.add_column(overflow="fold")
    t.add_column(overflow="fold", justify="right")
    for key, value in result.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "-"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        t.add_row(labels.get(key, key), "-" if value is None else str(value))
    return t


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the identity commands to the main CLI."""

    def _store(db: str | None):
        return open_runtime(Settings.from_env().with_(database_url=db)).store

    review = typer.Typer(help=_("Review queue of uncertain patient matches."), no_args_is_help=True)
    db_option = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)"))

    @app.command("link", help=_("Link Patient records of the same person across hospitals."))
    def link(
        all_: bool = typer.Option(False, "--all", help=_("Re-link every Patient in the store")),
        patient: str = typer.Option(None, "--patient", help=_("Link one Patient id")),
        db: str = db_option,
    ) -> None:
        """Link Patient records of the same person across hospitals."""
        from fhir_server.identity import service

        if not all_ and not patient:
            raise typer.BadParameter(_("give --all or --patient ID"))
        store = _store(db)
        with console.status(_("linking…")):
            result = service.link_all(store) if all_ else service.link_patient(store, patient)
        console.print(summary_table(_("Patient linking"), result))

    @review.command("list", help=_("Show queued pairs (ids, score and agreeing fields only: no names)."))
    def review_list(
        status: str = typer.Option("pending", help="pending | accepted | rejected"),
        limit: int = typer.Option(50, help=_("at most this many")),
        db: str = db_option,
    ) -> None:
        """Show queued pairs (ids, score and agreeing fields only: no names are printed)."""
        from fhir_server.identity import service

        table = Table("id", _("patient A"), _("patient B"), _("score"), _("features"), _("reason"))
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

    @review.command("accept", help=_("Accept a queued pair (links the two Patients)."))
    def review_accept(
        review_id: int, by: str = typer.Option(None, help=_("Reviewer name")), db: str = db_option
    ) -> None:
        """Accept a queued pair (links the two Patients)."""
        from fhir_server.identity import service

        console.print(summary_table(_("Review accepted"), service.review_accept(_store(db), review_id, by)))

    @review.command("reject", help=_("Reject a queued pair (they will not be linked automatically)."))
    def review_reject(
        review_id: int, by: str = typer.Option(None, help=_("Reviewer name")), db: str = db_option
    ) -> None:
        """Reject a queued pair (they will not be linked automatically)."""
        from fhir_server.identity import service

        console.print(summary_table(_("Review rejected"), service.review_reject(_store(db), review_id, by)))

    @app.command("unlink", help=_("Take a Patient out of its link set."))
    def unlink(
        patient: str, by: str = typer.Option(None, help=_("Who undoes the link")), db: str = db_option
    ) -> None:
        """Take a Patient out of its link set."""
        from fhir_server.identity import service

        console.print(summary_table(_("Unlinked"), service.undo_link(_store(db), patient, by)))

    app.add_typer(review, name="review")
