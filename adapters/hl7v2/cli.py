"""`lienthong mllp`: run the HL7 v2 MLLP listener."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Callable

import typer

from adapters.i18n import _
from fhir_server.settings import Settings


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the `mllp` command to the lienthong CLI; `open_runtime(settings, ...)` opens a wired store."""

    @app.command(
        help=_(
            "Receive HL7 v2 over MLLP; ACK AA only after the data is committed (AE/AR with ERR otherwise)."
        )
    )
    def mllp(
        host: str = typer.Option("127.0.0.1", help=_("Bind address")),
        port: int = typer.Option(2575, help=_("TCP port (2575 is the registered HL7 port)")),
        db: str = typer.Option(None, "--db", help=_("database URL")),
        max_bytes: int = typer.Option(1024 * 1024, help=_("Largest accepted message; bigger ones get AR")),
        workers: int = typer.Option(2, help=_("Batches written concurrently (each one group commit)")),
        processes: int = typer.Option(
            1, help=_("Listener processes sharing the port (SO_REUSEPORT); use the core count")
        ),
        tz_offset: str = typer.Option("+07:00", help=_("Offset for HL7 times sent without one")),
        hl7apy_validate: bool = typer.Option(False, help=_("Also run hl7apy's full tolerant parse (slower)")),
    ) -> None:
        """Receive HL7 v2 over MLLP; ACK AA only after the data is committed (AE/AR with ERR otherwise)."""
        settings = Settings.from_env().with_(database_url=db)
        logging.basicConfig(level=logging.INFO)
        open_runtime(settings).store.close()  # create the schema once, before listeners start
        options = {
            "tz_offset": tz_offset,
            "profile_set": settings.profile_set,
            "hl7apy_validate": hl7apy_validate,
        }
        typer.echo(
            _(
                "MLLP listening on {host}:{port} with {processes} process(es) (database: {db})",
                host=host,
                port=port,
                processes=processes,
                db=settings.database_url.split("@")[-1],
            )
        )
        args = (open_runtime, settings, host, port, max_bytes, workers, options, processes > 1)
        if processes == 1:
            serve_listener(*args)
            return
        ctx = multiprocessing.get_context("spawn")
        children = [ctx.Process(target=serve_listener, args=args) for _ in range(processes)]
        for child in children:
            child.start()

        def stop_children(*_args) -> None:
            # Each child shuts down gracefully on SIGTERM: in-flight messages commit and are ACKed.
            for child in children:
                if child.is_alive():
                    child.terminate()

        signal.signal(signal.SIGTERM, stop_children)
        try:
            for child in children:
                child.join()
        except KeyboardInterrupt:
            stop_children()
            for child in children:
                child.join()


def serve_listener(
    open_runtime: Callable,
    settings: Settings,
    host: str,
    port: int,
    max_bytes: int,
    workers: int,
    options: dict,
    reuse_port: bool,
) -> None:
    """Run one listener process until SIGTERM or Ctrl-C (in-flight messages finish before it exits)."""
    from adapters.hl7v2.mllp import run_listener

    # Linking is deferred: the listener drains the durable pending queue after ACKs went out.
    runtime = open_runtime(settings, pool_size=workers + 1, create=False, deferred_linking=True)
    store = runtime.store

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await run_listener(
            store,
            host,
            port,
            max_bytes=max_bytes,
            workers=workers,
            options=options,
            reuse_port=reuse_port,
            linker=runtime.linker,
        )

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        store.close()
