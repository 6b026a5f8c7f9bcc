"""Ingest through a durable broker (NATS JetStream): front ends archive, publish, and answer at once;
`lienthong worker` processes (adapters/worker.py) do the parsing, mapping and writing.

The payload itself stays in the inbox table (archived before anything else, as without a broker);
the stream carries only its inbox id, so the broker's work per message is small and a message can
always be traced to the raw bytes. Rows waiting for a worker have status "queued".

Stream: `<stream>` (default LIENTHONG_INGEST), work-queue retention (a message is removed once a
worker acknowledged it), file storage, duplicate window of 2 minutes keyed on `inbox-<id>` so a front
end or the sweeper publishing the same row twice queues it once. Subjects: `<stream lowercased>.<channel>`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from fhir_server.settings import Settings
from fhir_server.timeutil import now_us

log = logging.getLogger(__name__)

INBOX_HEADER = "Lienthong-Inbox"
REPLY_HEADER = "Lienthong-Reply"  # core NATS subject a front end waits on for the commit notification
DUPLICATE_WINDOW = 120.0


@dataclass(frozen=True)
class BrokerConfig:
    """Where the stream is and how deliveries behave."""

    url: str
    stream: str = "LIENTHONG_INGEST"
    max_deliver: int = 5  # deliveries without a commit before a message is dead-lettered
    ack_wait: float = 30.0  # seconds a worker has before an unacknowledged message goes to another
    durable: str = "workers"

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerConfig:
        """The broker of LIENTHONG_BROKER_* settings (url required)."""
        if not settings.broker_url:
            raise ValueError("no broker configured (LIENTHONG_BROKER_URL)")
        return cls(
            settings.broker_url, settings.broker_stream, settings.broker_max_deliver, settings.broker_ack_wait
        )

    @property
    def prefix(self) -> str:
        """Subject prefix of the stream."""
        return self.stream.lower()

    def subject(self, channel: str) -> str:
        """Subject of one channel's payloads."""
        return f"{self.prefix}.{channel}"


async def connect(cfg: BrokerConfig, name: str) -> tuple[Client, JetStreamContext]:
    """Connect (reconnecting forever after a broker restart) and make sure the stream exists."""

    holder: list[Client] = []

    async def _disconnected() -> None:
        if holder and not (holder[0].is_closed or holder[0].is_draining):
            log.warning("broker connection lost; reconnecting")

    nc = await nats.connect(
        cfg.url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, disconnected_cb=_disconnected
    )
    holder.append(nc)
    js = nc.jetstream()
    await ensure_stream(js, cfg)
    return nc, js


async def ensure_stream(js: JetStreamContext, cfg: BrokerConfig) -> None:
    """Create the stream when missing (idempotent; an existing stream keeps its messages)."""
    try:
        await js.stream_info(cfg.stream)
        return
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=cfg.stream,
            subjects=[f"{cfg.prefix}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )
    )


def consumer_config(cfg: BrokerConfig) -> ConsumerConfig:
    """The shared durable pull consumer of all workers (explicit acks; redelivery is unbounded here,
    the worker itself dead-letters after max_deliver so the error is kept with the payload)."""
    return ConsumerConfig(
        durable_name=cfg.durable, ack_wait=cfg.ack_wait, max_deliver=-1, max_ack_pending=10000
    )


async def publish(
    js: JetStreamContext, cfg: BrokerConfig, inbox_id: int, channel: str, reply: str | None = None
) -> None:
    """Queue one archived payload (by inbox id) for the workers; waits for the stream's ack."""
    headers = {"Nats-Msg-Id": f"inbox-{inbox_id}", INBOX_HEADER: str(inbox_id)}
    if reply:
        headers[REPLY_HEADER] = reply
    await js.publish(cfg.subject(channel), orjson.dumps({"inbox_id": inbox_id}), headers=headers)


async def publish_many(
    js: JetStreamContext, cfg: BrokerConfig, items: list[tuple[int, str]], reply: str | None = None
) -> None:
    """Queue several archived payloads, waiting for all the stream's acks at once."""
    await asyncio.gather(*(publish(js, cfg, i, ch, reply) for i, ch in items))


def inbox_id_of(msg) -> int:
    """The inbox id a message refers to (ValueError for a message no front end of ours sent)."""
    raw = (msg.headers or {}).get(INBOX_HEADER)
    if raw is None:
        raw = orjson.loads(msg.data)["inbox_id"]
    return int(raw)


async def republish_queued(js: JetStreamContext, cfg: BrokerConfig, repo, older_than: float = 60.0) -> int:
    """Publish again the rows still queued after `older_than` seconds: a front end that died between
    its archive commit and its publish leaves such rows. Rows that are in the stream already are
    de-duplicated by the stream (within its window) or closed once by `finish_many`."""
    rows = await asyncio.to_thread(repo.queued_before, now_us() - int(older_than * 1e6))
    if rows:
        await publish_many(js, cfg, [(int(r["inbox_id"]), r["channel"]) for r in rows])
        log.info("republished %d queued payload(s)", len(rows))
    return len(rows)


class Publisher:
    """A front end's connection to the broker, opened on first use in the running event loop."""

    def __init__(self, cfg: BrokerConfig, name: str = "lienthong-frontend"):
        self.cfg = cfg
        self.name = name
        self._conn: tuple[Client, JetStreamContext] | None = None
        self._lock: asyncio.Lock | None = None

    async def js(self) -> JetStreamContext:
        """The JetStream context (connecting once)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None:
                self._conn = await connect(self.cfg, self.name)
        return self._conn[1]

    async def nc(self) -> Client:
        """The core NATS connection (for commit notifications)."""
        await self.js()
        assert self._conn is not None
        return self._conn[0]

    async def publish_many(self, items: list[tuple[int, str]], reply: str | None = None) -> None:
        """Queue archived payloads ((inbox id, channel) pairs)."""
        await publish_many(await self.js(), self.cfg, items, reply)

    async def close(self) -> None:
        """Drain and close the connection."""
        if self._conn is not None:
            await self._conn[0].drain()
            self._conn = None


_PUBLISHERS: dict[tuple[BrokerConfig, int], Publisher] = {}


def publisher(cfg: BrokerConfig) -> Publisher:
    """This event loop's publisher for a broker (one connection per process and loop)."""
    key = (cfg, id(asyncio.get_running_loop()))
    if key not in _PUBLISHERS:
        _PUBLISHERS[key] = Publisher(cfg)
    return _PUBLISHERS[key]


def archive_queued(
    store, items: list[tuple[bytes, str]], adapter: str | None, content_type, options: dict
) -> list[tuple[int, str]]:
    """Archive payloads as "queued" (adapter resolved now, so the channel is known); returns
    (inbox id, channel) pairs. KeyError when no adapter takes a payload."""
    from adapters.pipeline import _resolve
    from adapters.repository import ingest_repository

    rows = []
    for payload, source in items:
        ad = _resolve(payload, adapter, content_type)
        if ad is None:
            raise KeyError("no installed adapter recognises this payload")
        rows.append(
            {
                "payload": payload,
                "source": source,
                "channel": ad.channel,
                "content_type": content_type,
                "status": "queued",
                "summary": {"options": options, "adapter": ad.name},
            }
        )
    ids = ingest_repository(store).archive_many(rows)
    return [(i, r["channel"]) for i, r in zip(ids, rows)]


async def enqueue(
    store,
    settings: Settings,
    items: list[tuple[bytes, str]],
    adapter: str | None,
    content_type,
    options: dict,
) -> list[tuple[int, bool]]:
    """Front-end side of broker mode: archive (committed) then publish; returns (inbox id, published).

    A publish that fails leaves the row queued and archived: the workers' sweep publishes it once
    the broker is back, so the caller may still answer "accepted"."""
    cfg = BrokerConfig.from_settings(settings)
    queued = await asyncio.to_thread(archive_queued, store, items, adapter, content_type, options)
    try:
        await publisher(cfg).publish_many(queued)
        ok = True
    except Exception as exc:  # broker down: the row waits for the sweep
        log.warning(
            "publish to the broker failed (%s); %d payload(s) wait for the sweep",
            type(exc).__name__,
            len(queued),
        )
        ok = False
    return [(i, ok) for i, _ch in queued]
