"""`lienthong worker`: take archived payloads from the broker, process them in group commits, and
acknowledge each message to the broker only after its data and its inbox row are committed.

Delivery is at least once; the data is written exactly once because (1) a payload's resources have
deterministic ids and an identical re-write is a no-op (no new version), and (2) the inbox row is
closed, with its dead letters, in one transaction that only a still-"queued" row passes
(`IngestRepository.finish_many`). A worker killed at any point leaves its messages unacknowledged:
the broker gives them to another worker after `ack_wait`.

- Database unreachable (restart, cut connections): the batch is retried in place with backoff, the
  messages kept alive with "in progress" signals, so an outage does not count as a failed delivery.
- Poison: a message delivered `max_deliver` times without a commit (its processing raised every time,
  or killed the worker) is dead-lettered with the reason and acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.hl7v2.processor import CHANNEL as HL7_CHANNEL
from adapters.hl7v2.processor import process_queued
from adapters.pipeline import Archived, process_archived
from adapters.repository import ingest_repository, is_unavailable
from fhir_server.logsafe import log_failure
from fhir_server.settings import Settings

if TYPE_CHECKING:
    from adapters.broker import BrokerConfig

# The broker client (nats-py) is imported where it is used: every `lienthong` command registers this
# module, and only `lienthong worker` needs the client.

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Counters of one worker process (printed at exit, read by tests and benches)."""

    batches: int = 0
    committed: int = 0  # inbox rows this worker closed
    skipped: int = 0  # deliveries of rows another delivery had closed already
    dead_lettered: int = 0
    retries: int = 0  # batches retried because the database was unreachable
    naks: int = 0


@dataclass
class _Delivery:
    msg: object
    inbox_id: int | None
    error: str | None = None
    ack: bytes | None = None


@dataclass
class Worker:
    """One consumer of the ingest stream over one store."""

    store: object
    settings: Settings
    cfg: BrokerConfig
    batch: int = 50
    sweep_after: float = 30.0  # seconds a row may stay queued, with the stream empty, before republishing
    stats: WorkerStats = field(default_factory=WorkerStats)

    def __post_init__(self) -> None:
        self.repo = ingest_repository(self.store)

    # -- the loop -----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished first."""
        import nats.errors

        from adapters.broker import connect, consumer_config

        nc, js = await connect(self.cfg, "lienthong-worker")
        sub = await js.pull_subscribe(
            f"{self.cfg.prefix}.>",
            durable=self.cfg.durable,
            stream=self.cfg.stream,
            config=consumer_config(self.cfg),
        )
        last_sweep = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - last_sweep > self.sweep_after:
                    last_sweep = time.monotonic()
                    await self._sweep(js, sub)
                try:
                    msgs = await sub.fetch(self.batch, timeout=1.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except nats.errors.Error as exc:  # broker restarting: the client reconnects
                    log_failure(log, "fetch from the broker failed", exc)
                    await asyncio.sleep(1.0)
                    continue
                await self._handle(nc, msgs, stop)
        finally:
            # Unacknowledged messages (none after a clean stop) are redelivered by the broker.
            try:
                await sub.unsubscribe()
            except Exception:  # connection already gone
                pass
            await nc.close()

    async def _sweep(self, js, sub) -> None:
        """Republish rows a front end archived but never got into the stream (it died in between);
        only when this consumer has nothing pending, so a long backlog is never queued twice."""
        from adapters.broker import republish_queued

        try:
            info = await sub.consumer_info()
            if info.num_pending == 0 and info.num_ack_pending == 0:
                await republish_queued(js, self.cfg, self.repo, older_than=self.sweep_after)
        except Exception as exc:  # the sweep is a safety net: never let it stop the worker
            log_failure(log, "republishing queued payloads failed", exc)

    async def _handle(self, nc, msgs: list, stop: asyncio.Event) -> None:
        """Process one fetched batch; acknowledge after commit; retry while the database is away."""
        from adapters.broker import REPLY_HEADER, inbox_id_of

        deliveries = []
        for msg in msgs:
            try:
                deliveries.append(_Delivery(msg, inbox_id_of(msg)))
            except (ValueError, KeyError, TypeError) as exc:
                deliveries.append(
                    _Delivery(msg, None, f"not a Lienthong ingest message ({type(exc).__name__})")
                )
        beat = asyncio.create_task(self._keep_alive(msgs))
        try:
            delay = 0.5
            while True:
                try:
                    await asyncio.to_thread(self._process, deliveries)
                    break
                except Exception as exc:
                    if not is_unavailable(exc):
                        await asyncio.to_thread(self._isolate, deliveries)
                        break
                    self.stats.retries += 1
                    log_failure(log, "database unavailable; retrying the batch", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            beat.cancel()
        for d in deliveries:
            if d.error is not None:
                self.stats.naks += 1
                await d.msg.nak(delay=min(2.0**d.msg.metadata.num_delivered, 30.0))
                continue
            await d.msg.ack()
            reply = (d.msg.headers or {}).get(REPLY_HEADER)
            if reply and d.ack is not None:
                await nc.publish(reply, d.ack, headers={"Lienthong-Inbox": str(d.inbox_id)})
        self.stats.batches += 1

    async def _keep_alive(self, msgs: list) -> None:
        """Tell the broker the batch is being worked on, so a slow commit is not redelivered."""
        while True:
            await asyncio.sleep(max(self.cfg.ack_wait / 3, 0.5))
            for msg in msgs:
                try:
                    await msg.in_progress()
                except Exception:  # the broker is away: the deliveries may come back, which is safe
                    pass

    # -- processing (a worker thread; synchronous SQL) ----------------------------------------------
    def _process(self, deliveries: list[_Delivery]) -> None:
        """Poison first, then every queued row of the batch in group commits (one per channel family)."""
        live = []
        for d in deliveries:
            if d.inbox_id is None:
                if d.msg.metadata.num_delivered >= self.cfg.max_deliver:
                    self._dead_message(d)
                continue
            if d.msg.metadata.num_delivered > self.cfg.max_deliver:
                self._poison(d, f"delivered {d.msg.metadata.num_delivered - 1} times without a commit")
                continue
            live.append(d)
        rows = self.repo.load_inbox([d.inbox_id for d in live])
        todo = []
        for d in live:
            row = rows.get(d.inbox_id)
            if row is None:
                d.error = f"inbox row {d.inbox_id} not found"
            elif row["status"] != "queued":
                self.stats.skipped += 1  # closed by an earlier delivery
                d.ack = self._stored_ack(row)
            else:
                todo.append((d, row))
        hl7 = [(d, r) for d, r in todo if r["channel"] == HL7_CHANNEL]
        other = [(d, r) for d, r in todo if r["channel"] != HL7_CHANNEL]
        if other:
            self._commit_files(other)
        if hl7:
            self._commit_hl7(hl7)

    def _isolate(self, deliveries: list[_Delivery]) -> None:
        """A batch raised: run its messages one by one, so only the culprit is retried or dead-lettered."""
        for d in deliveries:
            if d.error is not None or d.inbox_id is None:
                continue
            try:
                self._process([d])
            except Exception as exc:
                if is_unavailable(exc):
                    d.error = "database unavailable"
                elif d.msg.metadata.num_delivered >= self.cfg.max_deliver:
                    self._poison(d, f"{type(exc).__name__}: {exc}"[:500])
                else:
                    log_failure(log, "processing inbox %s failed", exc, d.inbox_id)
                    d.error = type(exc).__name__

    @staticmethod
    def _items(pairs) -> list[Archived]:
        out = []
        for _d, row in pairs:
            sm = row.get("summary") or {}
            out.append(
                Archived(
                    int(row["inbox_id"]),
                    row["payload"],
                    sm.get("adapter"),
                    row.get("content_type"),
                    sm.get("options") or {},
                    row.get("source") or "broker",
                )
            )
        return out

    def _commit_files(self, pairs) -> None:
        items = self._items(pairs)
        _results, closed = process_archived(self.store, items, settings=self.settings)
        self.stats.committed += len(closed)
        self.stats.skipped += len(items) - len(closed)

    def _commit_hl7(self, pairs) -> None:
        items = self._items(pairs)
        qb = process_queued(self.store, items, settings=self.settings)
        remembered = self.repo.remember(HL7_CHANNEL, qb.to_remember)
        for key, ack in remembered.items():
            qb.acks[qb.first_inbox[key]] = ack
        for d, _row in pairs:
            d.ack = qb.acks.get(d.inbox_id)
        self.stats.committed += len(qb.closed)
        self.stats.skipped += len(items) - len(qb.closed)

    def _stored_ack(self, row: dict) -> bytes | None:
        """The ACK a closed HL7 v2 row was answered with (for a listener still waiting on it)."""
        if row["channel"] != HL7_CHANNEL:
            return None
        from adapters.hl7v2.processor import _header, message_key

        header = _header(row["payload"])
        if not header.control_id:
            return None
        return self.repo.stored_responses(HL7_CHANNEL, [message_key(header)]).get(message_key(header))

    def _poison(self, d: _Delivery, reason: str) -> None:
        """Dead-letter a payload that keeps failing (or killing its worker), and close its row."""
        row = self.repo.load_inbox([d.inbox_id]).get(d.inbox_id) if d.inbox_id is not None else None
        if row is None:
            d.error = reason
            self._dead_message(d)
            return
        dead = {
            "inbox_id": d.inbox_id,
            "channel": row["channel"],
            "reason": f"broker: {reason}",
            "location": "worker",
            "payload": row["payload"],
        }
        won = self.repo.finish_many(
            [dead],
            [
                (
                    int(row["inbox_id"]),
                    "failed",
                    lambda ids: {
                        "errors": [{"location": "worker", "reason": reason}],
                        "dead_letter_id": ids[0],
                    },
                )
            ],
        )
        self.stats.dead_lettered += len(won)
        d.error = None

    def _dead_message(self, d: _Delivery) -> None:
        """A message that names no inbox row: kept as a dead letter with its raw bytes."""
        self.repo.add_dead_letter(
            channel="broker",
            reason=d.error or "unreadable message",
            location="worker",
            payload=bytes(d.msg.data),
        )
        self.stats.dead_lettered += 1
        d.error = None


def run_worker(store, settings: Settings, *, batch: int = 50, linker=None) -> WorkerStats:
    """Run one worker until SIGTERM/SIGINT (the batch in hand is committed and acknowledged first)."""
    from adapters.broker import BrokerConfig

    worker = Worker(store, settings, BrokerConfig.from_settings(settings), batch=batch)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if linker is not None:
            await asyncio.to_thread(linker.drain)  # linking a crashed run left pending
        await worker.run(stop)

    asyncio.run(main())
    return worker.stats


def register(app, open_runtime: Callable) -> None:
    """Add `lienthong worker` to the CLI."""
    import typer

    @app.command("worker")
    def worker_cmd(
        db: str = typer.Option(None, "--db", help="Database URL (env LIENTHONG_DATABASE_URL)"),
        broker: str = typer.Option(None, "--broker", help="NATS URL (env LIENTHONG_BROKER_URL)"),
        batch: int = typer.Option(50, help="Messages per group commit"),
    ) -> None:
        """Process payloads queued on the broker by the ingest front ends (HTTP, MLLP, files)."""
        logging.basicConfig(level=logging.INFO)
        settings = Settings.from_env().with_(database_url=db, broker_url=broker)
        if not settings.broker_url:
            raise typer.BadParameter("give --broker or LIENTHONG_BROKER_URL (e.g. nats://127.0.0.1:4222)")
        runtime = open_runtime(settings, create=False)
        try:
            stats = run_worker(runtime.store, settings, batch=batch, linker=runtime.linker)
        finally:
            runtime.store.close()
        typer.echo(f"worker stopped: {stats}")
