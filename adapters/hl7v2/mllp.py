"""MLLP listener (asyncio streams): <VT> message <FS><CR> in, one ACK per message out, after commit.

Each connection is served in order (MLLP is request/answer); connections run concurrently. Database
work is synchronous SQLAlchemy, run in a bounded thread pool so the event loop keeps reading and writing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from adapters.hl7v2.ack import AckError, Header, build_ack
from adapters.hl7v2.processor import Outcome, process_batch
from fhir_server.logsafe import log_failure

log = logging.getLogger(__name__)

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
END = FS + CR
DEFAULT_MAX_BYTES = 1024 * 1024


def frame(message: bytes) -> bytes:
    """Wrap a message in MLLP framing."""
    return VT + message + END


class Drainable(Protocol):
    """Deferred work to finish after commits (the identity linker's pending queue)."""

    def drain(self) -> int:
        """Do the pending work; returns how much was done."""
        ...


class MllpServer:
    """An MLLP listener over one Store; start(), then close() waits for in-flight messages."""

    def __init__(
        self,
        store,
        host: str = "127.0.0.1",
        port: int = 2575,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        workers: int = 2,
        options: dict | None = None,
        idle_timeout: float = 600.0,
        max_batch: int = 64,
        reuse_port: bool = False,
        linker: Drainable | None = None,
        processor: Callable[[list[tuple[bytes, str]]], Awaitable[list[Outcome]]] | None = None,
    ):
        self.store = store
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.options = options or {}
        self.idle_timeout = idle_timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp")
        self._server: asyncio.base_events.Server | None = None
        self._inflight: set[asyncio.Future] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task] = set()
        self._closing = False
        self.stats = {"AA": 0, "AE": 0, "AR": 0, "duplicates": 0, "connections": 0, "batches": 0}
        self.max_batch = max_batch
        self.workers = workers
        self.reuse_port = reuse_port
        self._queue: asyncio.Queue | None = None
        self._batchers: list[asyncio.Task] = []
        # Patients written by committed batches wait in the store's durable pending queue; the linker
        # drains it in the background after their ACKs went out (and at start, after a crash).
        self.linker = linker
        # Broker mode (adapters/hl7v2/brokered.py): messages are queued for workers and each ACK waits
        # for the worker's commit notification instead of a local commit.
        self.processor = processor
        self._committed: asyncio.Event | None = None
        self._link_task: asyncio.Task | None = None

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        self._queue = asyncio.Queue()
        self._batchers = [asyncio.create_task(self._batcher()) for _ in range(self.workers)]
        if self.linker is not None:
            self._committed = asyncio.Event()
            self._committed.set()  # drain what a previous run left pending
            self._link_task = asyncio.create_task(self._link_loop())
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=2**20, reuse_port=self.reuse_port or None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        if self._server is None:
            await self.start()
        async with self._server:
            await self._server.serve_forever()

    async def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, let every in-flight message finish (commit + ACK), then drop connections."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)
        for task in list(self._handlers):
            task.cancel()  # idle connections wait in read(); in-flight ones have finished above
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for task in self._batchers:
            task.cancel()
        await asyncio.gather(*self._batchers, return_exceptions=True)
        if self._link_task is not None:
            self._link_task.cancel()
            await asyncio.gather(self._link_task, return_exceptions=True)
        self._executor.shutdown(wait=True)
        self._drain()  # whatever the linker had not reached yet

    async def _process(self, raw: bytes, peer: str) -> Outcome:
        fut = asyncio.get_running_loop().create_future()
        self._inflight.add(fut)
        await self._queue.put((raw, peer, fut))
        try:
            # shield: a dropped connection must not abandon a commit half-way (the batch finishes anyway)
            return await asyncio.shield(fut)
        finally:
            self._inflight.discard(fut)

    async def _batcher(self) -> None:
        """Take every message waiting (up to max_batch) and commit them together (group commit).

        No timer: at low load a batch is one message and goes at once; under load, messages that
        arrive while a batch is being written form the next one, so commits are shared."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            items = [(raw, peer) for raw, peer, _ in batch]
            try:
                if self.processor is not None:
                    outcomes = await self.processor(items)
                else:
                    outcomes = await loop.run_in_executor(
                        self._executor,
                        lambda: process_batch(self.store, items, options=self.options),
                    )
            except Exception as exc:  # process_batch never raises; belt and braces for the futures
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.stats["batches"] += 1
            if self._committed is not None:
                self._committed.set()
            for (_, _, fut), outcome in zip(batch, outcomes):
                if not fut.done():
                    fut.set_result(outcome)

    def _drain(self) -> None:
        if self.linker is None:
            return
        try:
            self.linker.drain()
        except Exception as exc:  # linking is best effort here: the work stays pending for the next drain
            log_failure(log, "background identity linking failed", exc)

    async def _link_loop(self, interval: float = 0.2) -> None:
        """Link Patients of committed messages in the background, coalescing the batches of `interval`."""
        loop = asyncio.get_running_loop()
        assert self._committed is not None
        while True:
            await self._committed.wait()
            self._committed.clear()
            await loop.run_in_executor(self._executor, self._drain)
            await asyncio.sleep(interval)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if isinstance(peer_info, tuple) else str(peer_info)
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.stats["connections"] += 1
        buf = bytearray()
        try:
            while not self._closing:
                raw, oversized = await self._next_frame(reader, buf)
                if raw is None:
                    break
                if oversized:
                    ack = build_ack(
                        Header.sniff(raw),
                        "AR",
                        [
                            AckError(
                                "207",
                                "",
                                f"message larger than the {self.max_bytes}-byte limit; not processed",
                            )
                        ],
                    )
                    self.stats["AR"] += 1
                else:
                    outcome = await self._process(raw, peer)
                    ack = outcome.ack
                    self.stats[outcome.code] = self.stats.get(outcome.code, 0) + 1
                    self.stats["duplicates"] += int(outcome.duplicate)
                writer.write(frame(ack))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.CancelledError):
            pass  # peer gone, idle too long, or shutdown: nothing is half-committed (see _process)
        except Exception as exc:  # one broken connection must never take the listener down
            log_failure(log, "MLLP connection %s failed", exc, peer)
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # peer already gone
                pass

    async def _read_more(self, reader: asyncio.StreamReader, buf: bytearray) -> bool:
        chunk = await asyncio.wait_for(reader.read(65536), timeout=self.idle_timeout)
        if not chunk:
            return False
        buf += chunk
        return True

    async def _next_frame(self, reader: asyncio.StreamReader, buf: bytearray) -> tuple[bytes | None, bool]:
        """Next framed message: (bytes, oversized). Bytes outside frames are discarded; (None, _) at EOF.

        An oversized message returns only its first bytes (enough for the ACK header) and the rest of the
        frame is read and discarded, so the connection stays usable."""
        while True:
            start = buf.find(VT)
            if start < 0:
                buf.clear()  # garbage between frames
                if not await self._read_more(reader, buf):
                    return None, False
                continue
            if start:
                del buf[:start]
            end = buf.find(END, 1)
            if end >= 0:
                raw = bytes(buf[1:end])
                del buf[: end + 2]
                if len(raw) > self.max_bytes:
                    return raw[:4096], True
                return raw, False
            if len(buf) > self.max_bytes + 2:
                head = bytes(buf[1:4097])
                await self._discard_frame(reader, buf)
                return head, True
            if not await self._read_more(reader, buf):
                if len(buf) > 1:
                    log.warning("connection closed inside an MLLP frame (%d bytes dropped)", len(buf))
                return None, False

    async def _discard_frame(self, reader: asyncio.StreamReader, buf: bytearray) -> None:
        """Drop bytes up to and including the end of the current frame (kept memory stays bounded)."""
        tail = bytes(buf[-1:])
        buf.clear()
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=self.idle_timeout)
            if not chunk:
                return
            data = tail + chunk
            pos = data.find(END)
            if pos >= 0:
                buf += data[pos + 2 :]
                return
            tail = data[-1:]


async def run_listener(store, host: str, port: int, **kwargs) -> None:
    """Serve until cancelled (Ctrl-C), then shut down gracefully."""
    server = MllpServer(store, host, port, **kwargs)
    await server.start()
    log.info("MLLP listening on %s:%s", host, server.port)
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.close()
