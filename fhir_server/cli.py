"""The `lienthong` command line: serve the FHIR API, plus commands contributed by each component."""

from __future__ import annotations

import importlib
import logging

import typer
from rich.console import Console

from fhir_server.config import Settings

app = typer.Typer(
    help="Lienthong: Vietnamese hospital data to FHIR R4, and a FHIR server to share it.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

# Components add their own commands through a `register(app)` function.
_COMMAND_MODULES = (
    "adapters.cli",
    "adapters.hl7v2.cli",
    "fhir_server.search.cli",
    "fhir_server.identity.cli",
    "fhir_server.operations.cli",
)


@app.command()
def serve(
    db: str = typer.Option(
        None, "--db", help="Database URL (env LIENTHONG_DATABASE_URL; default SQLite file)"
    ),
    host: str = typer.Option(None, help="Bind address (env LIENTHONG_HOST, default 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (env LIENTHONG_PORT, default 8080)"),
    workers: int = typer.Option(1, help="Worker processes (use the core count in production)"),
) -> None:
    """Run the FHIR server (uvicorn)."""
    import os

    import uvicorn

    settings = Settings.from_env().with_(database_url=db, host=host, port=port)
    # Workers are separate processes: hand the effective settings over through the environment.
    os.environ["LIENTHONG_DATABASE_URL"] = settings.database_url
    from fhir_server.storage.store import open_store

    open_store(settings.database_url).engine.dispose()  # create/migrate the schema once, before workers start
    console.print(
        f"[bold green]Lienthong[/] FHIR base: http://{settings.host}:{settings.port}{settings.base_path}"
        f"  (database: {settings.database_url.split('@')[-1]})"
    )
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        "fhir_server.api.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


for _module in _COMMAND_MODULES:
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as _exc:
        if not (_exc.name and _module.startswith(_exc.name)):
            raise
