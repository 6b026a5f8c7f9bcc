"""MLLP in broker mode keeps "AA only after commit": the listener queues, a worker commits, and only
then does the ACK go out; with no worker the sender hears AR and its re-send is answered from the
stored ACK once a worker has committed the message."""

from __future__ import annotations

import asyncio

import pytest

from adapters.broker import BrokerConfig
from adapters.hl7v2.brokered import BrokeredProcessor
from adapters.hl7v2.mllp import MllpServer
from adapters.repository import ingest_repository
from adapters.worker import Worker
from tests.adapters.hl7v2.samples import ADT_A01, ORU_R01
from tests.adapters.hl7v2.test_mllp import Client, msa

pytestmark = pytest.mark.asyncio


async def _listener(store, settings, ack_timeout: float) -> tuple[MllpServer, BrokeredProcessor, int]:
    proc = BrokeredProcessor(store, settings, ack_timeout=ack_timeout)
    await proc.start()
    server = MllpServer(store, port=0, processor=proc)
    return server, proc, await server.start()


async def test_the_ack_comes_after_the_workers_commit(store, settings):
    server, proc, port = await _listener(store, settings, ack_timeout=20)
    worker = Worker(store, settings, BrokerConfig.from_settings(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        client = await Client.connect(port)
        acks = [await client.send(m) for m in (ADT_A01, ORU_R01)]
        await client.close()
    finally:
        stop.set()
        await task
        await server.close()
        await proc.close()
    assert [msa(a)[1] for a in acks] == ["AA", "AA"]
    assert ingest_repository(store).count_by_status() == {"processed": 2}
    assert store.count_current("Observation") >= 1


async def test_without_a_worker_the_sender_hears_ar_and_its_resend_gets_the_stored_aa(store, settings):
    server, proc, port = await _listener(store, settings, ack_timeout=1.0)
    try:
        client = await Client.connect(port)
        first = await client.send(ADT_A01)
        assert msa(first)[1] == "AR"  # queued but not committed: "send again later"
        worker = Worker(store, settings, BrokerConfig.from_settings(settings))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(30):
            while ingest_repository(store).count_by_status().get("queued"):
                await asyncio.sleep(0.2)
        stop.set()
        await task
        again = await client.send(ADT_A01)
        await client.close()
    finally:
        await server.close()
        await proc.close()
    assert msa(again)[1] == "AA"
    assert ingest_repository(store).count_by_status() == {"processed": 1, "duplicate": 1}
