"""`lienthong serve --workers 2` answers an operator's signals as a pre-fork server does (gunicorn):
SIGTTIN one worker more, SIGTTOU one fewer, SIGHUP every worker replaced with no request failing,
SIGTERM a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.lienthong.serving import wait_for

EXE = str(Path(sys.executable).with_name("lienthong"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(pid: int) -> set[int]:
    """The master's live children (exited ones not yet reaped are zombies, not workers)."""
    kids = {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    alive = set()
    for kid in kids:
        try:
            if "\nState:\tZ" not in Path(f"/proc/{kid}/status").read_text():
                alive.add(kid)
        except FileNotFoundError:
            pass
    return alive


def _wait_90(check, what: str):
    """Poll like wait_for, with the patience a loaded machine needs to fork and start workers."""
    return wait_for(check, what, 90)


@pytest.fixture
def server(tmp_path):
    """A running `lienthong serve --workers 2` on loopback: (process, FHIR base URL)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    proc = subprocess.Popen(
        [EXE, "serve", "--db", f"sqlite:///{tmp_path / 'lt.db'}", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        _wait_90(lambda: httpx.get(f"{base}/metadata", timeout=5).status_code == 200, "server did not start")
        _wait_90(lambda: len(_workers(proc.pid)) == 2, "not 2 workers")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_sigttin_adds_a_worker_and_sigttou_removes_one(server):
    proc, base = server
    before = _workers(proc.pid)
    proc.send_signal(signal.SIGTTIN)
    three = _wait_90(lambda: (w := _workers(proc.pid)) and len(w) == 3 and w, "SIGTTIN: not 3 workers")
    assert before < three
    proc.send_signal(signal.SIGTTOU)
    two = _wait_90(lambda: (w := _workers(proc.pid)) and len(w) == 2 and w, "SIGTTOU: not 2 workers")
    assert two < three
    assert httpx.get(f"{base}/metadata", timeout=10).status_code == 200


def test_sigttou_never_goes_below_one_worker(server):
    proc, base = server
    proc.send_signal(signal.SIGTTOU)
    _wait_90(lambda: len(_workers(proc.pid)) == 1, "SIGTTOU: not 1 worker")
    proc.send_signal(signal.SIGTTOU)
    time.sleep(3)  # give a wrong master time to stop its last worker
    assert len(_workers(proc.pid)) == 1
    assert httpx.get(f"{base}/metadata", timeout=10).status_code == 200


def test_sighup_replaces_every_worker_while_requests_keep_succeeding(server):
    proc, base = server
    created = httpx.post(
        f"{base}/Patient",
        json={"resourceType": "Patient", "name": [{"text": "LÊ THỊ HOA"}]},
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert created.status_code == 201
    url = f"{base}/Patient/{created.json()['id']}"
    old = _workers(proc.pid)
    results: list[int | str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:  # a new connection each time: whichever worker accepts it must answer
                results.append(httpx.get(url, timeout=30, headers={"Connection": "close"}).status_code)
            except httpx.HTTPError as exc:
                results.append(repr(exc))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        _wait_90(lambda: len(results) >= 5, "no request answered before the reload")
        proc.send_signal(signal.SIGHUP)
        new = _wait_90(
            lambda: (w := _workers(proc.pid)) and len(w) == 2 and not (w & old) and w,
            "SIGHUP: the workers were not all replaced",
        )
        during = len(results)
        _wait_90(lambda: len(results) >= during + 5, "no request answered after the reload")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert new.isdisjoint(old)
    assert [r for r in results if r != 200] == []


def test_sigterm_stops_the_master_and_every_worker(server):
    proc, _base = server
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
