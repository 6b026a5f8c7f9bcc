"""The `lienthong` command line: `serve`, plus the commands of the server and of each adapter plug-in,
registered here explicitly (a component that fails to import stops the CLI with its error)."""

from __future__ import annotations

import functools
import logging

import typer
from rich.console import Console

import adapters.cli
import adapters.hl7v2.cli
import adapters.worker
import fhir_server.commands
import fhir_server.hub.cli
from fhir_server.settings import Settings
from lienthong.app import app_from_settings
from lienthong.runtime import open_runtime

app = typer.Typer(
    help="Lienthong: Vietnamese hospital data to FHIR R4, and a FHIR server to share it.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


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
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = Settings.from_env().with_(database_url=db, host=host, port=port)
    open_runtime(settings).store.close()  # create/migrate the schema once, before workers start
    console.print(
        f"[bold green]Lienthong[/] FHIR base: http://{settings.host}:{settings.port}{settings.base_path}"
        f"  (database: {settings.database_url.split('@')[-1]})"
    )
    logging.basicConfig(level=logging.INFO)
    # Workers build their app from these settings (handed over pickled, not through the environment).
    config = uvicorn.Config(
        functools.partial(app_from_settings, settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    if workers <= 1:
        server.run()
        return
    Multiprocess(config, sockets=[config.bind_socket()]).run()


fhir_server.commands.register(app, open_runtime)
adapters.cli.register(app, open_runtime)
adapters.hl7v2.cli.register(app, open_runtime)
adapters.worker.register(app, open_runtime)
fhir_server.hub.cli.register(app, open_runtime)
