"""`lienthong serve` (the README's first command) starts a working FHIR server on SQLite."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_answers_metadata_and_stores_a_patient(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [str(exe), "serve", "--db", f"sqlite:///{tmp_path / 'lt.db'}", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "server did not start"
            time.sleep(0.2)
        created = httpx.post(
            f"{base}/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"text": "ĐỖ THỊ HOA", "family": "ĐỖ", "given": ["THỊ", "HOA"]}],
            },
            headers={"Content-Type": "application/fhir+json"},
        )
        assert created.status_code == 201
        found = httpx.get(f"{base}/Patient", params={"name": "do thi hoa"}).json()
        assert found["total"] == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/fhir" in out.decode()
