"""The `lienthong` command line: `serve`, `demo`, plus the commands of the server and of each adapter
plug-in, registered here explicitly (a component that fails to import stops the CLI with its error).

Language: `--lang vi|en`, else LIENTHONG_LANG, else the locale (LANG=vi_VN… → Vietnamese); the entry
point (lienthong/main.py) sets it before the commands are built so their help is translated too.
"""

from __future__ import annotations

import functools
import logging
import os

import typer
from rich.console import Console

import adapters.cli
import adapters.dead_letters
import adapters.facilities_cli
import adapters.hl7v2.cli
import adapters.qd130.cli
import adapters.recover
import adapters.worker
import fhir_server.commands
import fhir_server.hub.cli
import lienthong.demo
from fhir_server.i18n import normalize, process_lang, set_lang, stated_lang, use_lang
from fhir_server.settings import Settings
from lienthong.app import app_from_settings
from lienthong.exposure import InsecureBinding, exposure_warning, state_reader_lang, warning_lang
from lienthong.i18n import _
from lienthong.prefork import Supervisor
from lienthong.runtime import open_runtime

app = typer.Typer(
    help=_("Lienthong: Vietnamese hospital data to FHIR R4, and a FHIR server to share it."),
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root(
    ctx: typer.Context,
    lang: str = typer.Option(
        None, "--lang", help=_("language of the output: vi or en (default: LIENTHONG_LANG, then LANG)")
    ),
) -> None:
    """Set the output language for this run (and restore it afterwards: the CLI may run in-process)."""
    previous = process_lang()
    stated = normalize(lang) or stated_lang(os.environ)
    set_lang(stated or Settings.from_env().lang)
    previous_stated = state_reader_lang(stated)
    ctx.call_on_close(lambda: (set_lang(previous), state_reader_lang(previous_stated)))


def run_server(settings: Settings, workers: int = 1) -> None:
    """Create/migrate the schema, print the FHIR base, and serve until stopped (uvicorn)."""
    import uvicorn

    try:
        with use_lang(warning_lang()):
            warning = exposure_warning(settings)
    except InsecureBinding as exc:
        console.print(f"[bold red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2)
    if warning:
        console.print(f"[bold red]{warning}[/]", soft_wrap=True)
    runtime = open_runtime(settings)  # create/migrate the schema once, before workers start
    adapters.recover.recover_quietly(runtime.store, runtime.settings)  # crash leftovers (issue 12)
    runtime.store.close()
    console.print(
        _(
            "[bold green]Lienthong[/] FHIR base: {url}  (database: {db})",
            url=f"http://{settings.host}:{settings.port}{settings.base_path}",
            db=settings.database_url.split("@")[-1],
        ),
        soft_wrap=True,
    )
    logging.basicConfig(level=logging.INFO)
    if workers <= 1:
        config = uvicorn.Config(
            functools.partial(app_from_settings, settings),
            factory=True,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
        uvicorn.Server(config).run()
        return
    # issue 20: build the app once here and fork the workers from it, sharing its pages (see prefork.py).
    fhir_app = app_from_settings(settings)
    store = fhir_app.state.context.store
    store.engine.dispose()  # the master serves nothing: no connection of its own to hand down
    config = uvicorn.Config(
        fhir_app, host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    config.load()  # once, before the fork: what it builds is shared too
    Supervisor(config, workers, after_fork=lambda: store.engine.dispose(close=False)).run()


@app.command(help=_("Run the FHIR server (API at /fhir, clinician view at /ui, ingest at /ingest)."))
def serve(
    db: str = typer.Option(
        None, "--db", help=_("Database URL (env LIENTHONG_DATABASE_URL; default SQLite file)")
    ),
    host: str = typer.Option(None, help=_("Bind address (env LIENTHONG_HOST, default 127.0.0.1)")),
    port: int = typer.Option(None, help=_("Port (env LIENTHONG_PORT, default 8080)")),
    workers: int = typer.Option(1, help=_("Worker processes (use the core count in production)")),
    insecure_dev: bool = typer.Option(
        False, "--insecure-dev", help=_("Allow serving a non-loopback address without authentication")
    ),
) -> None:
    """Run the FHIR server (uvicorn)."""
    settings = Settings.from_env().with_(database_url=db, host=host, port=port)
    run_server(settings.with_(insecure_dev=insecure_dev or None), workers)


fhir_server.commands.register(app, open_runtime)
adapters.cli.register(app, open_runtime)
adapters.facilities_cli.register(app, open_runtime)
adapters.dead_letters.register(app, open_runtime)
adapters.qd130.cli.register(app, open_runtime)
adapters.hl7v2.cli.register(app, open_runtime)
adapters.recover.register(app, open_runtime)
adapters.worker.register(app, open_runtime)
fhir_server.hub.cli.register(app, open_runtime)
lienthong.demo.register(app, open_runtime, run_server)
