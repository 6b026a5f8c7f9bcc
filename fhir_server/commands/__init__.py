"""CLI commands of the FHIR server (reindex, identity linking), added to `lienthong` by the composition
root, which also hands in how to open a wired store (`open_runtime`)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from fhir_server.commands import clients, identity, reindex, report, users


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the server's commands to the main CLI."""
    reindex.register(app, open_runtime)
    identity.register(app, open_runtime)
    clients.register(app, open_runtime)
    users.register(app, open_runtime)
    report.register(app, open_runtime)
