"""Three hospital nodes as real `lienthong serve` processes (Chợ Rẫy and Huế on SQLite, Bạch Mai on
PostgreSQL, each its own database), loaded once per module, and a hub over them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fhir_server.hub.app import create_hub_app
from fhir_server.hub.config import parse_config
from tests.fhir_server.hub import hospitals
from tests.processes import drop_pg_database, free_port, new_pg_database, serve

PG_URL = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_or_skip(prefix: str) -> str:
    try:
        return new_pg_database(PG_URL, prefix)
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable and CI=true: {exc}")
        pytest.skip("PostgreSQL not reachable")


def load(base: str, node: str, db: str | None = None) -> None:
    """Write one hospital's data into its node over HTTP (and with `db`, index it for $match as the
    hospital's operator would: `lienthong link --all`)."""
    r = httpx.post(base, json=hospitals.transaction(node), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    if db:
        from fhir_server.identity.service import link_all
        from fhir_server.storage import open_store

        store = open_store(db, create=False)
        link_all(store)
        store.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[dict]:
    """name -> running node process, each with its hospital's data."""
    tmp = tmp_path_factory.mktemp("nodes")
    pg = _pg_or_skip("lienthong_hub_node")
    dbs = {
        "bv-cho-ray": f"sqlite:///{tmp / 'cho-ray.db'}",
        "bv-bach-mai": pg,
        "bv-hue": f"sqlite:///{tmp / 'hue.db'}",
    }
    procs = {}
    try:
        for name, db in dbs.items():
            procs[name] = serve(db, tmp, name)
            load(procs[name].base, name, db)
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        drop_pg_database(pg)


def hub_config(nodes: dict, timeout: float = 3.0, **per_node: dict) -> dict:
    """A federated hub config over the given node processes."""
    return {
        "mode": "federated",
        "nodes": [
            {"name": name, "base_url": p.base, "timeout": timeout, **per_node.get(name, {})}
            for name, p in nodes.items()
        ],
    }


def run_hub(config: dict) -> tuple[str, object]:
    """Serve a hub app with uvicorn in a thread; returns (FHIR base URL, server)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_hub_app(parse_config(config)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "hub did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/fhir", server


@pytest.fixture
def hub(nodes) -> Iterator[str]:
    """A hub over the three nodes (3 s timeout each); yields its FHIR base URL."""
    base, server = run_hub(hub_config(nodes))
    yield base
    server.should_exit = True
