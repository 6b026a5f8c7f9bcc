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
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lienthong.prefork")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_RESPAWN_PAUSE = 1.0  # a worker that dies at start-up must not turn the master into a fork loop


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the master dies, so a killed master never leaves workers serving."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(config: Any, sock: socket.socket, after_fork: Callable[[], None]) -> None:
    """Worker process body: reset what did not survive the fork, then serve until told to stop."""
    import uvicorn

    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    # A terminal's Ctrl-C reaches the whole process group; the master alone decides, and sends one
    # SIGTERM (a second signal would make uvicorn skip the lifespan shutdown: exports, audit flush).
    os.setpgid(0, 0)
    _die_with_parent()
    after_fork()
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Forks `workers` servers over one socket, restarts a worker that dies, stops them all on a signal."""

    def __init__(self, config: Any, workers: int, after_fork: Callable[[], None]) -> None:
        self.config = config
        self.workers = workers
        self.after_fork = after_fork
        self.children: set[int] = set()
        self.stopping = False

    def _spawn(self, sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(self.config, sock, self.after_fork)
            except BaseException:  # noqa: BLE001 - a child must never return into the master's loop
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.children.add(pid)

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> None:
        """Bind, fork the workers and supervise them until a stop signal; returns when all have exited."""
        sock = self.config.bind_socket()
        # Objects built so far live as long as the workers: frozen, no collection in a worker touches
        # (and so copies) the pages they sit on.
        gc.collect()
        gc.freeze()
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._stop)
        for _ in range(self.workers):
            self._spawn(sock)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self.children:
                continue
            self.children.discard(pid)
            if self.stopping:
                continue
            log.warning("worker %d exited (status %d); starting another", pid, status)
            time.sleep(_RESPAWN_PAUSE)
            if not self.stopping:
                self._spawn(sock)
        sock.close()
