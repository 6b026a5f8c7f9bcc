"""`lienthong clients add|list|disable|enable`: the system clients allowed to ask for access tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from fhir_server.auth.clients import parse_public_key
from fhir_server.i18n import _
from fhir_server.settings import Settings
from fhir_server.storage.sql.auth import ClientRecord


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `clients` command group to the lienthong CLI."""
    group = typer.Typer(help=_("Registered system clients (SMART Backend Services)."), no_args_is_help=True)
    app.add_typer(group, name="clients")

    def repo(db: str | None):
        return open_runtime(Settings.from_env().with_(database_url=db)).store.auth

    @group.command("add", help=_("Register a client with its public key (JWKS or PEM file)."))
    def add(
        client_id: str = typer.Argument(..., help=_("Client id (the iss and sub of its assertions)")),
        key: Path = typer.Option(..., "--key", help=_("Public key file: JWKS (JSON) or PEM")),
        scope: str = typer.Option(..., "--scope", help=_("Scopes the client may receive, space-separated")),
        name: str = typer.Option(None, "--name", help=_("Display name")),
        facility: str = typer.Option(None, "--facility", help=_("Facility code (mã CSKCB) it writes for")),
        province: str = typer.Option(
            None, "--province", help=_("Province code of a health-department client")
        ),
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """Register a client with its public key (JWKS or PEM file)."""
        text = key.read_text(encoding="utf-8")
        try:
            parse_public_key(text)
        except ValueError as exc:
            typer.echo(_("Invalid public key: {reason}", reason=str(exc)), err=True)
            raise typer.Exit(2)
        record = ClientRecord(
            client_id, name or client_id, text, " ".join(scope.split()), facility, province, True
        )
        if not repo(db).add_client(record):
            typer.echo(_("Client {id} already exists", id=client_id), err=True)
            raise typer.Exit(1)
        typer.echo(_("Client {id} registered", id=client_id))

    @group.command("list", help=_("List registered clients."))
    def list_(
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """List registered clients."""
        for c in repo(db).clients():
            state = _("enabled") if c.enabled else _("disabled")
            typer.echo(
                f"{c.client_id}\t{state}\t{c.facility or '-'}\t{c.province or '-'}\t{c.scopes}\t{c.name}"
            )

    def _switch(client_id: str, db: str | None, enabled: bool) -> None:
        if not repo(db).set_enabled(client_id, enabled):
            typer.echo(_("Unknown client {id}", id=client_id), err=True)
            raise typer.Exit(1)
        typer.echo(
            _("Client {id} enabled", id=client_id) if enabled else _("Client {id} disabled", id=client_id)
        )

    @group.command("disable", help=_("Disable a client: it gets no new tokens."))
    def disable(
        client_id: str = typer.Argument(..., help=_("Client id (the iss and sub of its assertions)")),
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """Disable a client: it gets no new tokens."""
        _switch(client_id, db, False)

    @group.command("enable", help=_("Enable a disabled client again."))
    def enable(
        client_id: str = typer.Argument(..., help=_("Client id (the iss and sub of its assertions)")),
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """Enable a disabled client again."""
        _switch(client_id, db, True)
