"""`lienthong clients add|list|disable|enable`: the system clients allowed to ask for access tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import typer

from fhir_server.auth.clients import parse_public_key
from fhir_server.i18n import _
from fhir_server.settings import Settings
from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `clients` command group to the lienthong CLI."""
    group = typer.Typer(help=_("Registered system clients (SMART Backend Services)."), no_args_is_help=True)
    app.add_typer(group, name="clients")

    def repo(db: str | None):
        return open_runtime(Settings.from_env().with_(database_url=db)).store.auth

    @group.command("add", help=_("Register a client with its public key (JWKS or PEM file)."))
    def add(
        client_id: str = typer.Argument(..., help=_("Client id (the iss and sub of its assertions)")),
        key: Path = typer.Option(None, "--key", help=_("Public key file: JWKS (JSON) or PEM")),
        scope: str = typer.Option(..., "--scope", help=_("Scopes the client may receive, space-separated")),
        name: str = typer.Option(None, "--name", help=_("Display name")),
        facility: str = typer.Option(None, "--facility", help=_("Facility code (mã CSKCB) it writes for")),
        province: str = typer.Option(
            None, "--province", help=_("Province code of a health-department client")
        ),
        redirect_uri: list[str] = typer.Option(
            None,
            "--redirect-uri",
            help=_("Redirect URI of a SMART app (authorization code flow); repeat for several"),
        ),
        public: bool = typer.Option(
            False, "--public", help=_("A public SMART app (no key; PKCE only) instead of a confidential one")
        ),
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """Register a client with its public key (JWKS or PEM file)."""
        uris = tuple(redirect_uri or ())
        if public and not uris:
            typer.echo(_("A public client needs at least one --redirect-uri"), err=True)
            raise typer.Exit(2)
        if any(not _redirect_ok(u) for u in uris):
            typer.echo(_("A redirect URI must be an absolute https URL (http only on loopback)"), err=True)
            raise typer.Exit(2)
        text = ""
        if key is not None:
            text = key.read_text(encoding="utf-8")
            try:
                parse_public_key(text)
            except ValueError as exc:
                typer.echo(_("Invalid public key: {reason}", reason=str(exc)), err=True)
                raise typer.Exit(2)
        elif not public:
            typer.echo(_("Give --key (a confidential client) or --public with --redirect-uri"), err=True)
            raise typer.Exit(2)
        record = ClientRecord(
            client_id, name or client_id, text, " ".join(scope.split()), facility, province, True
        )
        store = open_runtime(Settings.from_env().with_(database_url=db)).store
        if not store.auth.add_client(record):
            typer.echo(_("Client {id} already exists", id=client_id), err=True)
            raise typer.Exit(1)
        if uris:
            authcode_repository(store).set_app(client_id, uris, public)
        typer.echo(_("Client {id} registered", id=client_id))

    @group.command("list", help=_("List registered clients."))
    def list_(
        db: str = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)")),
    ) -> None:
        """List registered clients."""
        store = open_runtime(Settings.from_env().with_(database_url=db)).store
        apps = authcode_repository(store)
        for c in store.auth.clients():
            state = _("enabled") if c.enabled else _("disabled")
            app = apps.app(c.client_id)
            # SMART apps: "public" or "confidential", then their redirect URIs; system clients: "-".
            kind = "-" if app is None else ("public" if app.public else "confidential")
            uris = " ".join(app.redirect_uris) if app else "-"
            typer.echo(
                f"{c.client_id}\t{state}\t{c.facility or '-'}\t{c.province or '-'}\t{c.scopes}\t{c.name}"
                f"\t{kind}\t{uris}"
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


def _redirect_ok(uri: str) -> bool:
    """https anywhere; http only to a loopback host (native and development apps, RFC 8252)."""
    parts = urlsplit(uri)
    if parts.fragment or not parts.netloc:
        return False
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    )
