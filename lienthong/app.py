"""The ASGI application as deployed: the FHIR server plus the adapters' ingest endpoints."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from adapters.http import router as ingest_router
from adapters.qd130.http import router as qd130_router
from fhir_server.api.app import create_app as create_fhir_app
from fhir_server.settings import Settings
from fhir_server.storage import SqlStore
from lienthong.runtime import open_runtime


def create_app(settings: Settings | None = None, store: SqlStore | None = None) -> FastAPI:
    """Build the app over a store: opened and wired (`open_runtime`) from settings unless given, in
    which case the caller has wired it."""
    settings = settings or Settings.from_env()
    if store is None:
        store = open_runtime(settings).store
    return create_fhir_app(settings, store, extra_routers=[ingest_router, qd130_router])


def app_from_settings(settings: Settings) -> FastAPI:
    """Factory for server worker processes: each builds its app from the settings the CLI resolved."""
    app = create_app(settings)
    # issue 17: what is loaded by now lives as long as the worker. Frozen, it is no longer scanned by every
    # full collection (one took ~90 ms CPU, every ~50 views of a 2,000-resource clinician page).
    gc.collect()
    gc.freeze()
    return app
