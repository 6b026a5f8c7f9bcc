"""Per-request timing inside `lienthong serve` to find what makes the slow 1 % of reads slow (issue 20).

Runs the real CLI (`python bench/tail_probe.py serve --db … --workers 2`) with probes added before the
app is built; nothing of the server changes otherwise. Each worker appends one JSON line per request
to `$TAIL_PROBE_DIR/tail.<pid>.jsonl` (default /tmp): total time inside the app, the hop into the
thread pool (call → function start), the database call itself, the hop back (function end → the
coroutine resumes), the response send, garbage-collector pauses during the request (by generation),
and the event-loop thread's involuntary context switches (the kernel took the core away: another
process's load, not ours). `bench/tail_report.py` summarises the files.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import threading
import time

from starlette import concurrency

OUT_DIR = os.environ.get("TAIL_PROBE_DIR", "/tmp")
_local = threading.local()
_state: dict = {
    "gc": [],
    "gc_start": 0.0,
    "file": None,
    "pid": None,
    "buf": [],
    "audit": [],
    "audit_open": None,
}


def _gc_callback(phase: str, info: dict) -> None:
    now = time.perf_counter()
    if phase == "start":
        _state["gc_start"] = now
    else:
        _state["gc"].append((info["generation"], now - _state["gc_start"], _state["gc_start"]))


def _flush() -> None:
    pid = os.getpid()
    if _state["pid"] != pid:  # first record in this (forked) worker
        _state["pid"] = pid
        _state["buf"] = []
        _state["gc"].clear()
    if len(_state["buf"]) >= 200:
        with open(os.path.join(OUT_DIR, f"tail.{pid}.jsonl"), "a") as f:
            f.write("".join(_state["buf"]))
        _state["buf"].clear()


_current: dict | None = None


async def _timed_threadpool(func, *args, **kwargs):
    """run_in_threadpool with the hop in, the call and the hop out measured."""
    rec = _current
    t_call = time.perf_counter()
    marks: dict = {}

    def body():
        marks["start"] = time.perf_counter()
        _local.marks = marks
        try:
            return func(*args, **kwargs)
        finally:
            marks["end"] = time.perf_counter()
            _local.marks = None

    try:
        return await _original(body)
    finally:
        t_back = time.perf_counter()
        if rec is not None and "start" in marks:
            rec["hop_in"] = marks["start"] - t_call
            rec["db"] = marks["end"] - marks["start"]
            rec["hop_out"] = t_back - marks["end"]
            if "checkout" in marks and "exec_end" in marks:
                rec["acquire"] = marks["checkout"] - marks["start"]
                rec["execute"] = marks["exec_end"] - marks["exec_start"]


_original = concurrency.run_in_threadpool


class Probe:
    """Outermost ASGI layer: one record per HTTP request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        global _current
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _flush()
        rec: dict = {"path": scope["path"]}
        ru0 = resource.getrusage(resource.RUSAGE_THREAD)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        n_gc = len(_state["gc"])
        _current = rec
        marks: dict = {}

        async def timed_send(message):
            if message["type"] == "http.response.start":
                marks["start"] = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            t1 = time.perf_counter()
            _current = None
            ru1 = resource.getrusage(resource.RUSAGE_THREAD)
            rec["t0"] = t0
            rec["total"] = t1 - t0
            rec["send"] = t1 - marks.get("start", t1)
            rec["cpu_loop"] = time.thread_time() - c0
            rec["ivcsw"] = ru1.ru_nivcsw - ru0.ru_nivcsw
            rec["gc"] = [(g, d) for g, d, _s in _state["gc"][n_gc:]]
            # audit batches written (by the writer thread) while this request ran: ms overlapping it
            writes = [*_state["audit"][-8:], (_state["audit_open"] or t1, t1)]
            rec["audit"] = sum(max(0.0, min(t1, e) - max(t0, b)) for b, e in writes)
            _state["buf"].append(json.dumps(rec) + "\n")


def install() -> None:
    """Patch the thread-pool hop and wrap the app the CLI builds."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    import fhir_server.api.rest as rest
    import fhir_server.api.search as search
    import lienthong.app as lapp
    import lienthong.cli as cli

    def _mark(name: str) -> None:
        marks = getattr(_local, "marks", None)
        if marks is not None:
            marks[name] = time.perf_counter()

    event.listen(Pool, "checkout", lambda *_a: _mark("checkout"))
    event.listen(Engine, "before_cursor_execute", lambda *_a: _mark("exec_start"))
    event.listen(Engine, "after_cursor_execute", lambda *_a: _mark("exec_end"))
    from fhir_server.audit.trail import AuditTrail

    write = AuditTrail._write

    def timed_write(self, batch):
        start = _state["audit_open"] = time.perf_counter()
        try:
            return write(self, batch)
        finally:
            _state["audit_open"] = None
            _state["audit"].append((start, time.perf_counter()))
            del _state["audit"][:-64]

    AuditTrail._write = timed_write
    if os.environ.get("TAIL_SWITCH"):
        sys.setswitchinterval(float(os.environ["TAIL_SWITCH"]))
    rest.run_in_threadpool = _timed_threadpool
    if hasattr(search, "run_in_threadpool"):
        search.run_in_threadpool = _timed_threadpool
    gc.callbacks.append(_gc_callback)
    build = lapp.app_from_settings

    def wrapped(settings):
        app = build(settings)
        inner = app.build_middleware_stack()
        app.middleware_stack = Probe(inner)
        return app

    cli.app_from_settings = wrapped


if __name__ == "__main__":
    install()
    import atexit

    def _final() -> None:
        if _state["buf"] and _state["pid"] == os.getpid():
            with open(os.path.join(OUT_DIR, f"tail.{os.getpid()}.jsonl"), "a") as f:
                f.write("".join(_state["buf"]))

    atexit.register(_final)
    from lienthong.cli import app as cli_app

    sys.argv[0] = "lienthong"
    cli_app()
