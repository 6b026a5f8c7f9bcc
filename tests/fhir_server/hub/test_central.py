"""Central mode: nodes keep an outbox of committed changes; the hub pulls it into its own store with
provenance; a lost acknowledgement re-delivers changes without creating versions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from fhir_server.hub.central import attach_hub_linker, pull_all, pull_node
from fhir_server.hub.config import parse_config
from fhir_server.hub.federation import Federation
from fhir_server.identity.service import linked_patient_ids
from fhir_server.settings import Settings
from lienthong.runtime import open_runtime
from tests.fhir_server.hub import hospitals
from tests.fhir_server.hub.conftest import _pg_or_skip, load
from tests.processes import drop_pg_database, free_port

NODES = ("bv-cho-ray", "bv-bach-mai")


@dataclass
class ThreadNode:
    """A node served by uvicorn in a thread of the test process (faster to start than a process)."""

    base: str


def _thread_node(db: str, servers: list) -> ThreadNode:
    import uvicorn

    from lienthong.app import create_app

    settings = Settings(database_url=db, outbox=True)
    rt = open_runtime(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, rt.store), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline
        time.sleep(0.02)
    servers.append((server, rt.store))
    return ThreadNode(f"http://127.0.0.1:{port}/fhir")


@pytest.fixture
def outbox_nodes(tmp_path) -> Iterator[dict]:
    """Chợ Rẫy (SQLite) and Bạch Mai (PostgreSQL) with LIENTHONG_OUTBOX=true, each with its data."""
    pg = _pg_or_skip("lienthong_central_node")
    servers: list = []
    nodes = {}
    try:
        for name, db in (("bv-cho-ray", f"sqlite:///{tmp_path / 'cr.db'}"), ("bv-bach-mai", pg)):
            nodes[name] = _thread_node(db, servers)
            load(nodes[name].base, name)
        yield nodes
    finally:
        for server, store in servers:
            server.should_exit = True
            time.sleep(0.1)
            store.close()
        drop_pg_database(pg)


@pytest.fixture
def hub_store(db_url):
    """The hub's own store (SQLite and PostgreSQL), linking what it copies."""
    rt = open_runtime(Settings(database_url=db_url, link_on_ingest=False))
    attach_hub_linker(rt.store)
    yield rt.store
    rt.store.close()


def _federation(nodes: dict) -> Federation:
    return Federation(
        parse_config(
            {"mode": "federated", "nodes": [{"name": n, "base_url": p.base} for n, p in nodes.items()]}
        )
    )


async def _pull(store, nodes: dict) -> dict:
    fed = _federation(nodes)
    try:
        return await pull_all(store, list(fed.clients.values()))
    finally:
        await fed.close()


def test_the_hub_copies_every_nodes_data_with_its_origin_and_provenance(outbox_nodes, hub_store):
    counts = asyncio.run(_pull(hub_store, outbox_nodes))
    assert counts == {n: len(hospitals.resources(n)) for n in NODES}
    pid = hospitals.patient_id("bv-bach-mai")
    copy = hub_store.read("Patient", pid).as_dict()
    assert copy["meta"]["source"] == f"{outbox_nodes['bv-bach-mai'].base}/Patient/{pid}/_history/1"
    assert {"system": "http://lienthong.vn/fhir/CodeSystem/hub-node", "code": "bv-bach-mai"}.items() <= copy[
        "meta"
    ]["tag"][-1].items()
    provenances = [p.as_dict() for p in hub_store.iter_current("Provenance")]
    assert len(provenances) == 2
    by_node = {p["agent"][0]["who"]["identifier"]["value"]: p for p in provenances}
    assert {"reference": f"Patient/{pid}"} in by_node["bv-bach-mai"]["target"]
    # The hub linked the person's records from the two hospitals.
    assert set(linked_patient_ids(hub_store, hospitals.patient_id("bv-cho-ray"))) == {
        hospitals.patient_id("bv-cho-ray"),
        pid,
    }
    # Both outboxes are empty now.
    for p in outbox_nodes.values():
        assert httpx.get(f"{p.base}/$outbox").json()["total"] == 0


def test_a_lost_acknowledgement_redelivers_without_new_versions(outbox_nodes, hub_store):
    fed = _federation({"bv-cho-ray": outbox_nodes["bv-cho-ray"]})
    client = fed.clients["bv-cho-ray"]

    async def run() -> tuple[int, int, int]:
        first = await pull_node(hub_store, client, ack=False)  # the hub crashed before acknowledging
        versions = hub_store.history_count()
        again = await pull_node(hub_store, client)  # the same changes come again
        assert hub_store.history_count() == versions
        rest = await pull_node(hub_store, client)
        await fed.close()
        return first, again, rest

    first, again, rest = asyncio.run(run())
    assert first == again == len(hospitals.resources("bv-cho-ray"))
    assert rest == 0


def test_updates_and_deletes_on_a_node_reach_the_hub(outbox_nodes, hub_store):
    asyncio.run(_pull(hub_store, outbox_nodes))
    base = outbox_nodes["bv-cho-ray"].base
    pid = hospitals.patient_id("bv-cho-ray")
    patient = httpx.get(f"{base}/Patient/{pid}").json()
    patient["telecom"] = [{"system": "phone", "value": "0912345678"}]
    assert (
        httpx.put(
            f"{base}/Patient/{pid}", json=patient, headers={"Content-Type": "application/fhir+json"}
        ).status_code
        == 200
    )
    condition = next(r for r in hospitals.resources("bv-cho-ray") if r["resourceType"] == "Condition")
    assert httpx.delete(f"{base}/Condition/{condition['id']}").status_code in (200, 204)
    counts = asyncio.run(_pull(hub_store, outbox_nodes))
    assert counts == {"bv-cho-ray": 2, "bv-bach-mai": 0}
    copy = hub_store.read("Patient", pid)
    assert copy.as_dict()["telecom"][0]["value"] == "0912345678"
    assert copy.as_dict()["meta"]["source"].endswith(f"/Patient/{pid}/_history/2")
    assert hub_store.read("Condition", condition["id"]).deleted


def test_a_central_hub_serves_the_copies_it_pulls_on_its_own_fhir_api(outbox_nodes, db_url, tmp_path):
    import uvicorn

    from fhir_server.hub.app import create_hub_app

    config = parse_config(
        {
            "mode": "central",
            "store": db_url,
            "pull_interval": 0.2,
            "nodes": [{"name": n, "base_url": p.base} for n, p in outbox_nodes.items()],
        }
    )
    rt = open_runtime(Settings(database_url=db_url, link_on_ingest=False))
    attach_hub_linker(rt.store)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_hub_app(config, Settings(database_url=db_url), rt.store), port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    try:
        deadline = time.time() + 30
        found = {}
        while time.time() < deadline:
            try:
                found = httpx.get(
                    f"http://127.0.0.1:{port}/fhir/Patient",
                    params={"identifier": f"{hospitals.CCCD}|{hospitals.AN_CCCD}"},
                ).json()
                if found.get("total") == 2:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        status = httpx.get(f"http://127.0.0.1:{port}/hub/nodes").json()
    finally:
        server.should_exit = True
        time.sleep(0.3)
        rt.store.close()
    assert found["total"] == 2  # the person's records from both hospitals, copied to the hub
    assert {s["node"]: s["status"] for s in status} == {"bv-cho-ray": "up", "bv-bach-mai": "up"}
