"""Pre-forked workers for `lienthong serve --workers N` (issue 20: server memory).

The master imports everything and builds the app once, freezes the garbage collector's view of it,
then forks the workers: each one starts with the master's pages shared copy-on-write and serves the
listening socket with its own uvicorn server and event loop. uvicorn's own multi-worker mode spawns
fresh interpreters instead, so every worker paid for its own copy of fastapi, pydantic, the FHIR
models and SQLAlchemy.

What must not cross a fork is reset in the child: the database pool (`after_fork` disposes the
parent's connections without closing them) and the audit writer thread (restarted by
`fhir_server.audit.trail` itself). The lifespan (export worker, audit flush) runs in each worker, as
before.

Signals to the master (gunicorn's meaning):
- SIGTERM, SIGINT, SIGQUIT: stop every worker gracefully (in-flight requests finish), then exit.
- SIGHUP: graceful reload. As many new workers as are running are forked from the master, and once
  each has started serving (it says so on a pipe) the old ones are stopped gracefully; all share the
  listening socket, so no request is refused meanwhile. What is new: the worker processes (database
  pool, caches, audit writer, memory). What is NOT re-read: settings and code, since the master built
  the app once and forks from it; for a new setting or release, restart the service.
- SIGTTIN / SIGTTOU: one worker more / one fewer (never below one); SIGTTOU stops the oldest.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lienthong.prefork")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_CONTROL_SIGNALS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)
_RESPAWN_PAUSE = 1.0  # a worker that dies at start-up must not turn the master into a fork loop
_DRAIN_PAUSE = 0.5  # seconds a stopping worker waits between closing its listener and its idle connections
_RELOAD_READY_TIMEOUT = 60.0  # new workers not serving by then: the old ones are stopped all the same


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the master dies, so a killed master never leaves workers serving."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(config: Any, sock: socket.socket, after_fork: Callable[[], None], ready_fd: int) -> None:
    """Worker process body: reset what did not survive the fork, then serve until told to stop."""
    import uvicorn

    signal.set_wakeup_fd(-1)
    for sig in (*_STOP_SIGNALS, *_CONTROL_SIGNALS):
        signal.signal(sig, signal.SIG_DFL)
    # A terminal's Ctrl-C reaches the whole process group; the master alone decides, and sends one
    # SIGTERM (a second signal would make uvicorn skip the lifespan shutdown: exports, audit flush).
    os.setpgid(0, 0)
    _die_with_parent()
    after_fork()

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # lifespan done, accepting: a reload may now stop the old workers
                os.write(ready_fd, os.getpid().to_bytes(4, "little"))

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Stop accepting, then give a connection accepted just before a moment to send its request:
            # uvicorn closes a connection with no request yet at once, and the client sees it dropped.
            for server in self.servers:
                server.close()
            await asyncio.sleep(_DRAIN_PAUSE)
            await super().shutdown(sockets=sockets)

    _Server(config).run(sockets=[sock])


class Supervisor:
    """Forks `workers` servers over one socket, restarts a worker that dies, answers the master's signals."""

    def __init__(self, config: Any, workers: int, after_fork: Callable[[], None]) -> None:
        self.config = config
        self.workers = max(1, workers)  # the target; SIGTTIN/SIGTTOU move it
        self.after_fork = after_fork
        self.children: dict[int, float] = {}  # pid -> fork time (SIGTTOU stops the oldest)
        self.retiring: set[int] = set()  # told to stop: not replaced when they exit
        self.ready: set[int] = set()
        self.reload: tuple[set[int], set[int], float] | None = None  # (old, new, deadline)
        self.stopping = False
        self.pending: list[int] = []

    def _spawn(self, sock: socket.socket, ready_w: int) -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(self.config, sock, self.after_fork, ready_w)
            except BaseException:  # noqa: BLE001 - a child must never return into the master's loop
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        return pid

    def _signal(self, signum: int, _frame: object) -> None:
        # Only noted here; the loop acts on it (a handler must not fork or wait mid-loop).
        self.pending.append(signum)

    def _terminate(self, pids: set[int]) -> None:
        for pid in pids:
            self.retiring.add(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _serving(self) -> list[int]:
        """Workers not told to stop, oldest first."""
        return sorted((p for p in self.children if p not in self.retiring), key=self.children.__getitem__)

    def _handle(self, signum: int, sock: socket.socket, ready_w: int) -> None:
        if signum in _STOP_SIGNALS:
            self.stopping = True
            self.reload = None
            self._terminate(set(self.children))
        elif self.stopping:
            return
        elif signum == signal.SIGTTIN:
            self.workers += 1
            log.info("SIGTTIN: %d workers", self.workers)
        elif signum == signal.SIGTTOU and self.workers > 1:
            self.workers -= 1
            log.info("SIGTTOU: %d workers", self.workers)
            serving = self._serving()
            if len(serving) > self.workers:
                self._terminate({serving[0]})
        elif signum == signal.SIGHUP and self.reload is None:
            old = set(self._serving())
            new = {self._spawn(sock, ready_w) for _ in range(self.workers)}
            self.reload = (old, new, time.monotonic() + _RELOAD_READY_TIMEOUT)
            log.info("SIGHUP: %d new workers forked; the old ones stop once they serve", len(new))

    def _reap(self) -> bool:
        """Collect exited workers; True when one exited that nobody asked to stop."""
        unexpected = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return unexpected
            if pid == 0:
                return unexpected
            if self.children.pop(pid, None) is None:
                continue
            self.ready.discard(pid)
            if pid in self.retiring:
                self.retiring.discard(pid)
            elif not self.stopping:
                log.warning("worker %d exited (status %d); starting another", pid, status)
                unexpected = True

    def _advance_reload(self) -> None:
        if self.reload is None:
            return
        old, new, deadline = self.reload
        new &= set(self.children)
        if not new:  # every new worker died before serving: keep the old ones, the reload is abandoned
            log.warning("SIGHUP: no new worker started; the old workers keep serving")
            self.reload = None
            return
        if new <= self.ready or time.monotonic() > deadline:
            self._terminate(old & set(self.children))
            self.reload = None

    def _top_up(self, sock: socket.socket, ready_w: int) -> None:
        if self.stopping or self.reload is not None:
            return
        for _ in range(self.workers - len(self._serving())):
            self._spawn(sock, ready_w)

    def run(self) -> None:
        """Bind, fork the workers and supervise them until a stop signal; returns when all have exited."""
        sock = self.config.bind_socket()
        # Objects built so far live as long as the workers: frozen, no collection in a worker touches
        # (and so copies) the pages they sit on.
        gc.collect()
        gc.freeze()
        ready_r, ready_w = os.pipe()
        wake_r, wake_w = os.pipe()
        for fd in (ready_r, wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)  # a signal wakes the select below
        for sig in (*_STOP_SIGNALS, *_CONTROL_SIGNALS):
            signal.signal(sig, self._signal)
        try:
            for _ in range(self.workers):
                self._spawn(sock, ready_w)
            while self.children or not self.stopping:
                while self.pending:
                    self._handle(self.pending.pop(0), sock, ready_w)
                if self._reap():
                    time.sleep(_RESPAWN_PAUSE)
                self._advance_reload()
                self._top_up(sock, ready_w)
                if self.stopping and not self.children:
                    break
                readable, _w, _x = select.select([ready_r, wake_r], [], [], 0.5)
                if ready_r in readable:
                    data = _drain(ready_r)
                    self.ready |= {int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)}
                if wake_r in readable:
                    _drain(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            for fd in (ready_r, ready_w, wake_r, wake_w):
                os.close(fd)
            sock.close()


def _drain(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk
