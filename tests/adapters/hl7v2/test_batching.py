"""Group commit: messages processed together still get their own ACKs, and re-sends within one batch
are answered with the first copy's ACK without being written twice."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from adapters.hl7v2.mllp import frame
from adapters.hl7v2.processor import process_batch
from adapters.repository import inbox
from fhir_server.storage.sql.schema import resource_history
from tests.adapters.hl7v2.samples import ADT_A01, ORU_R01


def _count(store, table, *where) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_resend_inside_one_batch_gets_the_first_ack_and_is_not_rewritten(store):
    outcomes = process_batch(store, [(ADT_A01, "a"), (ORU_R01, "b"), (ADT_A01, "c")])
    assert [o.code for o in outcomes] == ["AA", "AA", "AA"]
    assert outcomes[2].duplicate and outcomes[2].ack == outcomes[0].ack
    assert _count(store, inbox) == 3
    assert _count(store, inbox, inbox.c.status == "duplicate") == 1
    assert _count(store, resource_history, resource_history.c.res_type == "Patient") == 1


def test_listener_processes_share_the_port(db_url, store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [str(exe), "mllp", "--db", db_url, "--port", str(port), "--processes", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        acks = []
        for raw in (ADT_A01, ORU_R01):
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                    break
                except OSError:
                    assert time.time() < deadline, "listener did not start"
                    time.sleep(0.2)
            with conn:
                conn.sendall(frame(raw))
                data = b""
                while not data.endswith(b"\x1c\r"):
                    data += conn.recv(65536)
            acks.append(data)
        assert all(b"MSA|AA|" in ack for ack in acks)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # SIGTERM to the parent stops every listener process: nothing keeps the port.
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        assert time.time() < deadline, "a listener process outlived its parent"
        time.sleep(0.2)
