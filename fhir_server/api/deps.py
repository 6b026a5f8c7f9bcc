"""FastAPI dependencies: what a route needs (settings, storage), handed in instead of read from app.state.

The app sets `app.state.context` once at build time; routes declare `Ctx` (or `Store`/`Config`) and
never touch `app.state` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from fhir_server.settings import Settings
from fhir_server.storage.base import Storage


@dataclass
class AppContext:
    """Everything shared by the requests of one app: configuration, storage, advertised operations."""

    settings: Settings
    store: Storage
    operations: list[dict] = field(default_factory=list)
    capability: bytes | None = None


def get_context(request: Request) -> AppContext:
    """The app's context (set by `create_app`)."""
    return request.app.state.context


def get_store(request: Request) -> Storage:
    """The app's storage."""
    return request.app.state.context.store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.context.settings


# Dependencies are coroutines: FastAPI runs plain `def` dependencies in the thread pool, a thread hop
# per request for a dictionary lookup.
async def _context(request: Request) -> AppContext:
    return request.app.state.context


async def _store(request: Request) -> Storage:
    return request.app.state.context.store


async def _settings(request: Request) -> Settings:
    return request.app.state.context.settings


Ctx = Annotated[AppContext, Depends(_context)]
Store = Annotated[Storage, Depends(_store)]
Config = Annotated[Settings, Depends(_settings)]
