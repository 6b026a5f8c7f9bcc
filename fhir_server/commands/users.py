"""`lienthong users add|list|disable|set-province`: local clinician accounts for the /ui login (argon2
hashes), optionally bound to one province (health-department staff)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from fhir_server.auth.province import normalize
from fhir_server.errors import FhirError
from fhir_server.i18n import _
from fhir_server.settings import Settings
from fhir_server.storage.sql.authcode import authcode_repository
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user

MIN_PASSWORD = 10


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `users` command group to the lienthong CLI."""
    users = typer.Typer(help=_("Clinician accounts of the /ui view"), no_args_is_help=True)
    app.add_typer(users, name="users")
    db_option = typer.Option(None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL)"))

    def province_code(value: str | None) -> str | None:
        try:
            return normalize(value)
        except FhirError:
            typer.echo(
                _("The province must be a province code (e.g. 79), not {value}", value=value), err=True
            )
            raise typer.Exit(2)

    def repo(db: str | None):
        return user_repository(open_runtime(Settings.from_env().with_(database_url=db)).store)

    @users.command("add", help=_("Create an account (the password is asked for, or read from stdin)"))
    def add_cmd(
        username: str = typer.Argument(..., help=_("Login name")),
        name: str = typer.Option("", "--name", help=_("Full name shown in the view")),
        admin: bool = typer.Option(False, "--admin", help=_("May see who viewed a record")),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help=_("Read the password from the first line of stdin")
        ),
        province: str = typer.Option(
            None, "--province", help=_("Limit reports to this province (post-2025 code, e.g. 79)")
        ),
        db: str = db_option,
    ) -> None:
        """Create an account."""
        bound = province_code(province)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(_("Password"), hide_input=True, confirmation_prompt=True)
        if len(password) < MIN_PASSWORD:
            typer.echo(_("The password must have at least {n} characters", n=MIN_PASSWORD), err=True)
            raise typer.Exit(2)
        if not add_user(repo(db), username, name, password, admin, bound):
            typer.echo(_("User {username} already exists", username=username), err=True)
            raise typer.Exit(1)
        typer.echo(_("User {username} created", username=username))

    @users.command("list", help=_("List the accounts"))
    def list_cmd(db: str = db_option) -> None:
        """List the accounts."""
        for row in repo(db).all():
            state = _("disabled") if row.disabled else _("active")
            where = row.province or "*"
            typer.echo(f"{row.username}\t{row.display_name}\t{','.join(row.roles)}\t{where}\t{state}")

    @users.command("disable", help=_("Disable an account (it can no longer sign in)"))
    def disable_cmd(username: str = typer.Argument(..., help=_("Login name")), db: str = db_option) -> None:
        """Disable an account."""
        if not repo(db).set_disabled(username):
            typer.echo(_("No user {username}", username=username), err=True)
            raise typer.Exit(1)
        typer.echo(_("User {username} disabled", username=username))

    @users.command("set-province", help=_("Limit an account's reports to one province (--all: lift it)"))
    def set_province_cmd(
        username: str = typer.Argument(..., help=_("Login name")),
        province: str = typer.Argument(None, help=_("Post-2025 province code, e.g. 79")),
        every: bool = typer.Option(False, "--all", help=_("No province limit")),
        db: str = db_option,
    ) -> None:
        """Bind an account to a province, or lift the binding."""
        if every == bool(province):
            typer.echo(_("Give either a province code or --all"), err=True)
            raise typer.Exit(2)
        bound = None if every else province_code(province)
        if not repo(db).set_province(username, bound):
            typer.echo(_("No user {username}", username=username), err=True)
            raise typer.Exit(1)
        typer.echo(_("User {username}: province {province}", username=username, province=bound or "*"))

    @users.command("fhir-user", help=_("Link an account to its Practitioner (the fhirUser of its id_token)"))
    def fhir_user_cmd(
        username: str = typer.Argument(..., help=_("Login name")),
        reference: str = typer.Argument(..., help=_("Practitioner reference, e.g. Practitioner/bs-lan")),
        db: str = db_option,
    ) -> None:
        """Link an account to its Practitioner."""
        kind, _slash, rid = reference.partition("/")
        if kind not in ("Practitioner", "PractitionerRole", "Person") or not rid or "/" in rid:
            typer.echo(_("Expected Practitioner/<id>, PractitionerRole/<id> or Person/<id>"), err=True)
            raise typer.Exit(2)
        store = open_runtime(Settings.from_env().with_(database_url=db)).store
        if user_repository(store).get(username) is None:
            typer.echo(_("No user {username}", username=username), err=True)
            raise typer.Exit(1)
        authcode_repository(store).set_fhir_user(username, reference)
        typer.echo(_("User {username} is {reference}", username=username, reference=reference))
