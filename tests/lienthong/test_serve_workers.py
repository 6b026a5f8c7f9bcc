"""`lienthong serve --workers 2`: workers forked from one built app (issue 20) all serve, a dead worker
is replaced, and a stop signal shuts every worker down through its lifespan (audit queue flushed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from fhir_server.storage import open_store
from tests.lienthong.serving import wait_for as _wait_for

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "https://cccd.gov.vn", "value": "079085001234"}],
    "name": [{"text": "TRẦN VĂN BÌNH", "family": "TRẦN", "given": ["VĂN", "BÌNH"]}],
    "gender": "male",
    "birthDate": "1985-03-14",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is the server's."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def _holds_connection(pid: int, inodes: set[str]) -> bool:
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def test_two_forked_workers_both_serve_a_dead_one_is_replaced_and_stop_flushes_the_audit(db_url):
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    exe = Path(sys.executable).with_name("lienthong")
    env = {**os.environ, "LIENTHONG_AUDIT": "on"}
    proc = subprocess.Popen(
        [str(exe), "serve", "--db", db_url, "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    clients: list[httpx.Client] = []
    try:
        _wait_for(lambda: httpx.get(f"{base}/metadata", timeout=2).status_code == 200, "server did not start")
        workers = _wait_for(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid), "not 2 workers")
        created = httpx.post(
            f"{base}/Patient", json=PATIENT, headers={"Content-Type": "application/fhir+json"}
        )
        assert created.status_code == 201
        pid = created.json()["id"]

        # Each new connection is accepted by whichever worker gets there first: keep them open until
        # both workers hold one that has been answered.
        serving: set[int] = set()
        for _ in range(200):
            client = httpx.Client(base_url=base, timeout=10)
            clients.append(client)
            assert client.get(f"Patient/{pid}").json()["name"][0]["text"] == "TRẦN VĂN BÌNH"
            inodes = _established_inodes(port)
            serving |= {w for w in workers if _holds_connection(w, inodes)}
            if serving == workers:
                break
        assert serving == workers

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_for(
            lambda: (kids := _children(proc.pid)) and len(kids) == 2 and victim not in kids and kids,
            "the dead worker was not replaced",
        )
        assert replaced != workers
        for client in clients:
            client.close()
        clients.clear()
        answered_after = 0
        for _ in range(10):
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.get(f"Patient/{pid}").status_code == 200
                answered_after += 1
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    for worker in replaced:
        assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    store = open_store(db_url, create=False)
    try:
        # Reads answered by workers that were stopped by the signal: all written before they exited.
        assert store.count_current("AuditEvent") >= answered_after
    finally:
        store.close()
