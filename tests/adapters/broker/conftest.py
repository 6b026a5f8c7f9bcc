"""The real NATS JetStream at LIENTHONG_TEST_NATS_URL (default nats://127.0.0.1:4222); each test gets its
own stream, deleted afterwards. Unreachable NATS fails the run under CI=true (like PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from adapters.synth import generate
from fhir_server.settings import Settings

NATS_URL = os.environ.get("LIENTHONG_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _reachable(url: str) -> bool:
    u = urlparse(url)
    try:
        socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The test broker's URL (skip, or fail under CI, when nothing listens there)."""
    if not _reachable(NATS_URL):
        if os.environ.get("CI", "").lower() == "true":
            pytest.exit(f"NATS at {NATS_URL} is unreachable and CI=true", returncode=3)
        pytest.skip("NATS not reachable (set LIENTHONG_TEST_NATS_URL)")
    return NATS_URL


async def _delete_stream(url: str, name: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:  # never created
        pass
    await nc.drain()


@pytest.fixture
def stream(nats_url) -> Iterator[str]:
    """A stream name private to this test."""
    name = f"LT_TEST_{uuid.uuid4().hex[:10].upper()}"
    yield name
    asyncio.run(_delete_stream(nats_url, name))


@pytest.fixture
def settings(db_url, nats_url, stream) -> Settings:
    """Broker mode over the fresh database: short ack wait, 3 deliveries before a dead letter."""
    return Settings(
        database_url=db_url,
        broker_url=nats_url,
        broker_stream=stream,
        broker_ack_wait=2.0,
        broker_max_deliver=3,
    )


@pytest.fixture(scope="session")
def visits() -> list[bytes]:
    """40 synthetic QĐ130 envelopes from 3 hospitals (deterministic)."""
    return [v.xml for v in generate(hospitals=3, visits=40, seed=11).visits]


def versions(store) -> dict[tuple[str, str], int]:
    """(type, id) -> current version of every resource the adapters wrote (identity's Person excluded:
    link sets legitimately change with the order records arrive in)."""
    from sqlalchemy import text

    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT res_type, res_id, version FROM resource WHERE res_type <> 'Person'")
        ).all()
    return {(t, i): v for t, i, v in rows}


def reference_versions(tmp_path, payloads: list[bytes], adapter: str) -> dict[tuple[str, str], int]:
    """What a plain in-process ingest of the same payloads, one after the other, leaves in a fresh
    SQLite database: the truth a crashed and restarted broker run must match."""
    from adapters.pipeline import ingest_many
    from lienthong.runtime import open_runtime

    rt = open_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'reference.db'}", link_on_ingest=False))
    for i in range(0, len(payloads), 50):
        ingest_many(rt.store, [(p, "reference") for p in payloads[i : i + 50]], adapter=adapter)
    out = versions(rt.store)
    rt.store.close()
    return out
