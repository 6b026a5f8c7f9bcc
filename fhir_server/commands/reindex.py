"""`lienthong reindex`: rebuild search index rows from stored resources (after adding SearchParameters,
or after a bulk load that deferred indexing)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from fhir_server.i18n import _
from fhir_server.settings import Settings


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `reindex` command to the lienthong CLI."""

    @app.command(
        "reindex",
        help=_(
            "Rebuild the search index (e.g. after POSTing SearchParameter resources or a deferred bulk load)."
        ),
    )
    def reindex_cmd(
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
        res_type: str = typer.Option(None, "--type", help=_("Only this resource type")),
    ) -> None:
        """Rebuild the search index (e.g. after POSTing SearchParameter resources or a deferred bulk load)."""
        from rich.progress import Progress

        store = open_runtime(Settings.from_env().with_(database_url=db)).store
        total = store.count_current(res_type)
        with Progress() as bar:
            task = bar.add_task(_("reindexing"), total=total)
            count = store.reindex(res_type, progress=lambda n: bar.advance(task, n))
        typer.echo(_("reindexed {count} resources", count=count))
