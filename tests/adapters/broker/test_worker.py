"""Broker mode: front ends archive and queue, workers commit and acknowledge after commit; poison
messages end as dead letters with their reason."""

from __future__ import annotations

import asyncio

import nats
import pytest

from adapters.broker import BrokerConfig, enqueue
from adapters.repository import ingest_repository
from adapters.worker import Worker
from tests.adapters.broker.conftest import reference_versions, versions

pytestmark = pytest.mark.asyncio


async def drain(store, settings, until, timeout: float = 60.0, batch: int = 50) -> Worker:
    """Run an in-process worker until `until()` holds."""
    worker = Worker(store, settings, BrokerConfig.from_settings(settings), batch=batch, sweep_after=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(until):
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
    return worker


def _statuses(store) -> dict:
    return ingest_repository(store).count_by_status()


async def test_http_ingest_answers_202_and_a_worker_commits_the_visit(client, store, settings, visits):
    r = await client.post("/../ingest/qd130", content=visits[0])
    assert r.status_code == 202, r.text
    inbox_id = r.json()["inbox_id"]
    assert r.json()["status"] == "queued"
    assert store.count_current("Encounter") == 0  # nothing written before a worker runs
    await drain(store, settings, lambda: _statuses(store).get("queued", 0) == 0)
    row = (await client.get(f"/../ingest/inbox/{inbox_id}")).json()
    assert row["status"] == "processed"
    assert store.count_current("Encounter") >= 1


async def test_every_queued_file_is_committed_once_and_versions_match_a_plain_ingest(
    store, settings, visits, tmp_path
):
    queued = await enqueue(
        store, settings, [(x, f"file:{i}.xml") for i, x in enumerate(visits)], "qd130", None, {}
    )
    assert all(ok for _id, ok in queued)
    worker = await drain(store, settings, lambda: _statuses(store).get("queued", 0) == 0, batch=7)
    assert _statuses(store) == {"processed": len(visits)}
    assert worker.stats.committed == len(visits)
    assert versions(store) == reference_versions(tmp_path, visits, "qd130")


async def test_a_payload_sent_twice_to_the_stream_is_closed_once(store, settings, visits):
    cfg = BrokerConfig.from_settings(settings)
    ((inbox_id, _ok),) = await enqueue(store, settings, [(visits[1], "file:a.xml")], "qd130", None, {})
    # Publish the same row again outside the duplicate window's reach (another msg id): two deliveries.
    nc = await nats.connect(settings.broker_url)
    await nc.jetstream().publish(
        cfg.subject("qd130"), b'{"inbox_id": %d}' % inbox_id, headers={"Lienthong-Inbox": str(inbox_id)}
    )
    await nc.drain()
    worker = await drain(store, settings, lambda: _statuses(store).get("queued", 0) == 0)
    await asyncio.sleep(0.5)
    assert worker.stats.committed == 1
    assert _statuses(store) == {"processed": 1}


async def test_a_message_that_is_not_ours_is_dead_lettered_after_max_deliveries(store, settings):
    cfg = BrokerConfig.from_settings(settings)
    from adapters.broker import connect

    nc, js = await connect(cfg, "test")
    await js.publish(cfg.subject("qd130"), b"not json at all")
    await nc.drain()
    repo = ingest_repository(store)
    worker = await drain(store, settings, lambda: repo.count_dead_letters("open") == 1, timeout=40)
    (dl,) = repo.list_dead_letters("open")
    assert dl["channel"] == "broker" and "not a Lienthong ingest message" in dl["reason"]
    assert worker.stats.naks == cfg.max_deliver - 1


async def test_a_row_archived_but_never_published_is_found_by_the_sweep(store, settings, visits):
    from adapters.broker import archive_queued

    ids = archive_queued(store, [(visits[2], "http:died-before-publish")], "qd130", None, {})
    await asyncio.sleep(1.2)  # older than the sweep's threshold
    await drain(store, settings, lambda: _statuses(store).get("queued", 0) == 0)
    assert ingest_repository(store).get_inbox(ids[0][0])["status"] == "processed"
