"""MLLP in broker mode: the listener archives each message, queues it for the workers and sends the
ACK only when a worker tells it the message was committed — the "AA only after commit" promise holds.

How: every listener subscribes to its own reply subject (core NATS) and puts it in the header of the
messages it publishes; the worker publishes the ACK it built to that subject after the commit that
closed the inbox row. If no notification comes within `ack_timeout` (workers busy or down), the
sender gets AR ("not committed yet, send again"): the message is still queued and will be committed,
and the re-send is answered with the stored ACK (MSH-10 de-duplication) once it is.
If the listener dies, queued messages are still committed by the workers; the senders re-send after
their own timeout and get the stored ACK.
"""

from __future__ import annotations

import asyncio
import uuid

from adapters.broker import INBOX_HEADER, BrokerConfig, Publisher
from adapters.hl7v2.ack import AckError, build_ack
from adapters.hl7v2.errors import INTERNAL_ERROR
from adapters.hl7v2.processor import CHANNEL, CONTENT_TYPE, Outcome, _code_of, _header, message_key
from adapters.repository import ingest_repository
from fhir_server.settings import Settings


class BrokeredProcessor:
    """The MllpServer's `processor` in broker mode."""

    def __init__(self, store, settings: Settings, options: dict | None = None, ack_timeout: float = 30.0):
        self.store = store
        self.cfg = BrokerConfig.from_settings(settings)
        self.options = options or {}
        self.ack_timeout = ack_timeout
        self.publisher = Publisher(self.cfg, "lienthong-mllp")
        self.reply = f"_lienthong_acks.{uuid.uuid4().hex}"
        self._waiting: dict[int, asyncio.Future] = {}
        self._sub = None

    async def start(self) -> None:
        """Connect and listen for commit notifications."""
        nc = await self.publisher.nc()
        self._sub = await nc.subscribe(self.reply, cb=self._on_ack)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        await self.publisher.close()

    async def _on_ack(self, msg) -> None:
        fut = self._waiting.get(int((msg.headers or {}).get(INBOX_HEADER, -1)))
        if fut is not None and not fut.done():
            fut.set_result(bytes(msg.data))

    def _archive(self, items: list[tuple[bytes, str]]) -> tuple[list[Outcome | None], list[tuple[int, int]]]:
        """Answer re-sends from stored ACKs; archive the rest as queued. Returns (outcomes so far,
        (position, inbox id) of the queued ones)."""
        repo = ingest_repository(self.store)
        headers = [_header(raw) for raw, _ in items]
        keys = [message_key(h) if h.control_id else None for h in headers]
        stored = repo.stored_responses(CHANNEL, sorted({k for k in keys if k}))
        outcomes: list[Outcome | None] = [None] * len(items)
        rows, positions = [], []
        for i, ((raw, peer), key) in enumerate(zip(items, keys)):
            known = stored.get(key) if key else None
            row = {
                "payload": raw,
                "source": f"mllp:{peer}",
                "channel": CHANNEL,
                "content_type": CONTENT_TYPE,
                "status": "duplicate" if known else "queued",
                "summary": {"duplicate_of": key} if known else {"options": self.options, "adapter": "hl7v2"},
            }
            rows.append(row)
            positions.append(i)
            if known:
                outcomes[i] = Outcome(known, _code_of(known), duplicate=True)
        ids = repo.archive_many(rows)
        queued = [
            (pos, inbox_id) for pos, inbox_id, row in zip(positions, ids, rows) if row["status"] == "queued"
        ]
        return outcomes, queued

    async def __call__(self, items: list[tuple[bytes, str]]) -> list[Outcome]:
        """Queue a batch and wait for each message's commit notification."""
        headers = [_header(raw) for raw, _ in items]
        try:
            outcomes, queued = await asyncio.to_thread(self._archive, items)
        except Exception as exc:  # database unreachable: nothing archived, the sender retries
            return [self._ar(h, f"{type(exc).__name__}") for h in headers]
        loop = asyncio.get_running_loop()
        futures = {inbox_id: loop.create_future() for _pos, inbox_id in queued}
        self._waiting.update(futures)
        try:
            await self.publisher.publish_many(
                [(inbox_id, CHANNEL) for _pos, inbox_id in queued], reply=self.reply
            )
            if futures:
                await asyncio.wait(list(futures.values()), timeout=self.ack_timeout)
        except Exception:  # broker down: the rows stay queued for the sweep; the sender hears AR
            pass
        finally:
            for inbox_id in futures:
                self._waiting.pop(inbox_id, None)
        for pos, inbox_id in queued:
            fut = futures[inbox_id]
            if fut.done() and not fut.cancelled():
                ack = fut.result()
                outcomes[pos] = Outcome(ack, _code_of(ack), inbox_id=inbox_id)
            else:
                outcomes[pos] = self._ar(headers[pos], "queued, not committed yet; send again later")
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _ar(header, why: str) -> Outcome:
        return Outcome(build_ack(header, "AR", [AckError(INTERNAL_ERROR, "", why[:200])]), "AR")
