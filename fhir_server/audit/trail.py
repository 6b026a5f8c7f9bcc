"""The audit trail: a bounded queue of accesses and one writer thread that stores them as AuditEvents.

Capacity is reserved *before* a request runs (`reserve`), so an event can never be dropped after its
data was served: when every slot is taken the request waits (`overflow=block`, up to a timeout) or
is refused with 503 (`overflow=fail`). The writer builds the AuditEvents (parsing response bodies off
the request path) and writes up to `batch_size` of them per transaction in the same database, with
origin `audit`; a failed batch is kept and retried, never discarded. `close()` flushes what is queued.

After the first access of a batch the writer waits up to `linger` seconds for more (issue 20): written
one by one, every read of a lone client cost a write transaction of its own, running beside the next
read (the next read's CPU, the GIL, a commit) — the largest cost of a read with audit on. `flush()`
and `close()` cut the wait short.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref

from fhir_server.audit.events import AccessRecord, build_event
from fhir_server.ids import new_id
from fhir_server.logsafe import log_failure
from fhir_server.storage.base import Storage

log = logging.getLogger("lienthong.audit")

ORIGIN = "audit"
_STOP = object()
_HURRY = object()  # flush(): write what is queued now


class AuditTrail:
    """Bounded, durable, batched AuditEvent writer for one app."""

    def __init__(
        self,
        store: Storage,
        capacity: int = 10_000,
        batch_size: int = 500,
        overflow: str = "block",
        block_timeout: float = 5.0,
        linger: float = 0.0,
    ) -> None:
        if overflow not in ("block", "fail"):
            raise ValueError(f"audit overflow must be 'block' or 'fail', not {overflow!r}")
        self.store = store
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.linger = max(0.0, linger)
        self.written = 0
        self.refused = 0
        self.failed_batches = 0
        self.batches = 0  # transactions written (exposed for tests and benches)
        self._closed = False
        self._start()
        _LIVE.add(self)

    def _start(self) -> None:
        self._slots = threading.Semaphore(self.capacity)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0  # reserved and not yet written
        self._cond = threading.Condition()
        self._paused = threading.Event()  # tests: hold the writer to fill the queue
        self._paused.set()
        self._thread = threading.Thread(target=self._run, name="lienthong-audit", daemon=True)
        self._thread.start()

    # -- request side --------------------------------------------------------------------------------
    def try_reserve(self) -> bool:
        """Take one slot without waiting; False when the queue is full."""
        if self._slots.acquire(blocking=False):
            with self._cond:
                self._pending += 1
            return True
        return False

    def reserve(self, timeout: float | None = None) -> bool:
        """Take one slot, waiting up to `timeout` seconds (blocking: call from a worker thread)."""
        if not self._slots.acquire(blocking=False):
            self._queue.put(_HURRY)  # a request waits for a slot: the writer must not linger
            if not self._slots.acquire(timeout=self.block_timeout if timeout is None else timeout):
                return False
        with self._cond:
            self._pending += 1
        return True

    def note_refused(self) -> None:
        """Count a request refused because the queue was full (exposed for metrics and tests)."""
        self.refused += 1

    def submit(self, record: AccessRecord) -> None:
        """Queue the record of an access whose slot was reserved."""
        self._queue.put(record)

    def record_event(self, event: dict) -> bool:
        """Queue a ready-made AuditEvent (sign-ins, consent-page lookups); blocking: call from a worker
        thread. False when the queue stayed full (the caller refuses what it was about to do)."""
        if not (self.try_reserve() or (self.overflow == "block" and self.reserve())):
            self.note_refused()
            return False
        self._queue.put(event)
        return True

    def cancel(self) -> None:
        """Give back a reserved slot that will carry no record."""
        self._done(1)

    # -- lifecycle -----------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every reserved access is written; False on timeout."""
        deadline = time.monotonic() + timeout
        self._queue.put(_HURRY)  # no lingering for more: the caller waits
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._paused.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def pause(self) -> None:
        """Hold the writer (operational drills and tests of the full-queue behaviour)."""
        self._paused.clear()

    def resume(self) -> None:
        """Let the writer go on."""
        self._paused.set()

    # -- writer --------------------------------------------------------------------------------------
    def _done(self, n: int) -> None:
        with self._cond:
            self._pending -= n
            self._cond.notify_all()
        for _ in range(n):
            self._slots.release()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            self._paused.wait()
            batch: list[AccessRecord | dict] = []
            stop = first is _STOP
            hurry = stop or first is _HURRY
            if not hurry:
                batch.append(first)
            deadline = time.monotonic() + self.linger
            while len(batch) < self.batch_size:
                left = 0.0 if hurry else deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = hurry = True
                elif item is _HURRY:
                    hurry = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)

    def _write(self, batch: list[AccessRecord | dict]) -> None:
        events = []
        for record in batch:
            if isinstance(record, dict):
                events.append(record)
                continue
            try:
                events.append(build_event(record))
            except Exception as exc:  # a record we cannot describe still leaves a trace
                log_failure(log, "audit event could not be built", exc)
                events.append(
                    build_event(
                        AccessRecord(
                            record.access, record.recorded, record.status, "", record.address, record.subject
                        )
                    )
                )
        delay = 0.05
        while True:
            try:
                self.store.run(
                    lambda tx: [tx.put(e, new_id(), "POST", fresh_id=True) for e in events], origin=ORIGIN
                )
                break
            except Exception as exc:  # the database is down: keep the batch, retry; requests block
                self.failed_batches += 1
                log_failure(log, "audit batch write failed, retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.written += len(batch)
        self.batches += 1
        self._done(len(batch))


_LIVE: weakref.WeakSet[AuditTrail] = weakref.WeakSet()


def _restart_after_fork() -> None:
    # A forked server worker (issue 20: `serve --workers N` forks from a built app) inherits the trail
    # but not its writer thread; its queue starts empty, since the master serves no requests.
    for trail in list(_LIVE):
        if not trail._closed:
            trail._start()


os.register_at_fork(after_in_child=_restart_after_fork)
