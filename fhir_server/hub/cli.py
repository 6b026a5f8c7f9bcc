"""`lienthong hub`: run the coordination hub (federated, or central with its own store)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import typer

from fhir_server.settings import Settings


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add `hub` to the lienthong CLI; central mode opens its store with `open_runtime`."""

    @app.command("hub")
    def hub_cmd(
        config: Path = typer.Option(..., "--config", "-c", help="hub config file (YAML): nodes, mode, store"),
        host: str = typer.Option("127.0.0.1", help="Bind address"),
        port: int = typer.Option(8090, help="Port"),
    ) -> None:
        """Answer queries about a patient from every hospital node (federated), or keep a central copy."""
        import uvicorn

        from fhir_server.hub.app import create_hub_app
        from fhir_server.hub.config import load_config

        cfg = load_config(config)
        settings = Settings.from_env().with_(host=host, port=port)
        store = None
        if cfg.mode == "central":
            from fhir_server.hub.central import attach_hub_linker

            settings = settings.with_(database_url=cfg.store)
            store = open_runtime(settings.with_(link_on_ingest=False)).store
            attach_hub_linker(store)
        logging.basicConfig(level=logging.INFO)
        typer.echo(
            f"Lienthong hub ({cfg.mode}, {len(cfg.nodes)} node(s)): http://{host}:{port}{settings.base_path}"
        )
        uvicorn.run(
            create_hub_app(cfg, settings, store), host=host, port=port, log_level="warning", access_log=False
        )
