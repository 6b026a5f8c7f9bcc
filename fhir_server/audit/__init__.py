"""Audit of patient-data access (issue 13): AuditEvents (IHE BALP) written through a bounded queue.

`events` classifies requests and builds AuditEvents, `trail` queues and writes them, `middleware`
records each request, `guard` keeps them append-only, `lifespan` flushes the queue on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def lifespan(app) -> AsyncIterator[None]:
    """App lifespan: on shutdown, write every queued AuditEvent before the process exits."""
    yield
    trail = getattr(app.state, "audit_trail", None)
    if trail is not None:
        trail.close()
