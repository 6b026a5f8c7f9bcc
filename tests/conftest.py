"""Shared fixtures: every storage-touching test runs on a fresh SQLite file AND on PostgreSQL.

PostgreSQL: LIENTHONG_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test). Each pytest
process creates its own database next to that one, so parallel runs never see each other's data;
tables are truncated between tests. When CI=true an unreachable PostgreSQL fails the run instead of
skipping the PostgreSQL half of the suite.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from adapters.repository import TABLES as INGEST_TABLES
from adapters.repository import ingest_repository
from fhir_server.settings import Settings
from fhir_server.storage import SqlStore, open_store
from fhir_server.storage.sql.db import make_engine, release_idle_connections
from fhir_server.storage.sql.migrate import store_metadata
from lienthong.app import create_app
from lienthong.runtime import attach_linker

PG_URL = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str | None]:
    """A PostgreSQL database private to this pytest process (None when unreachable outside CI)."""
    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL"
        if os.environ.get("CI", "").lower() == "true":
            pytest.exit(f"PostgreSQL at {PG_URL} is unreachable and CI=true: {exc}", returncode=3)
        yield None
        return
    name = f"lienthong_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    url = f"{base}/{name}"
    store = open_store(url)  # create the schema once
    store.close()
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    every = [*store_metadata().sorted_tables, *INGEST_TABLES]
    tables = ", ".join(f'"{t.name}"' for t in every if t.name != "schema_version")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(autouse=True)
def _hand_back_idle_connections() -> Iterator[None]:
    """After each test, close idle pooled PostgreSQL connections: stores a test opened and did not close
    would otherwise hold the server's 100 slots until garbage collection."""
    yield
    release_idle_connections()


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request, tmp_path, pg_session_url) -> str:
    """A fresh, empty database URL: a SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lienthong.db'}"
    if pg_session_url is None:
        pytest.skip("PostgreSQL not reachable (set LIENTHONG_TEST_PG_URL)")
    from adapters.repository import IngestRepository

    engine = make_engine(pg_session_url)
    IngestRepository(engine)  # the ingest side's tables, created on first use in production
    engine.dispose()
    _truncate_pg(pg_session_url)
    return pg_session_url


@pytest.fixture
def store(db_url) -> Iterator[SqlStore]:
    """An open store on the fresh database, wired as in production (identity linking on ingest)."""
    s = open_store(db_url)
    ingest_repository(s)
    attach_linker(s, Settings(database_url=db_url))
    yield s
    s.close()


@pytest.fixture
def settings(db_url) -> Settings:
    """Settings pointing at the fresh database."""
    return Settings(database_url=db_url)


@pytest.fixture
def app(settings, store):
    """The real ASGI app over the fresh database."""
    return create_app(settings, store=store)


@pytest_asyncio.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """httpx client driving the real ASGI app; base URL is the FHIR base."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test/fhir", headers={"Content-Type": "application/fhir+json"}
    ) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served by a real uvicorn on a loopback port; yields the FHIR base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/fhir"
    server.should_exit = True
    thread.join(timeout=10)
