"""Driving the real entry points in fuzz runs: POST /ingest answers, the MLLP listener on loopback,
and the checks on what they archived and dead-lettered (shared by the suite and bench/fuzz_parsers.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import httpx
from sqlalchemy import func, select

from adapters.hl7v2.mllp import END, VT, MllpServer
from adapters.repository import inbox, ingest_repository
from fhir_server.storage.sql.schema import resource
from tests.adapters.fuzz import properties


def capture_logs(caplog) -> None:
    """Capture every log record a deployment would emit (INFO and up)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="sqlalchemy")  # SQL echo is off in production too


def leaked(logged: str, people: set[str]) -> list[str]:
    """The generated names and ids that appear in the captured log text."""
    return sorted(p for p in people if p and p in logged)


def distinct_resources(store) -> int:
    """Resources in the store (each type and id once, whatever its versions)."""
    inner = select(resource.c.res_type, resource.c.res_id).distinct().subquery()
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def check_ingest_answer(store, payload: bytes, r: httpx.Response) -> dict:
    """The answer of POST /ingest/…: a defined status, the payload archived byte for byte, every
    rejected record dead-lettered with a precise reason."""
    assert r.status_code in (200, 207, 422), (r.status_code, r.text[:300])
    body = r.json()
    repo = ingest_repository(store)
    row = repo.get_inbox(body["inbox_id"])
    assert row is not None and bytes(row["payload"]) == payload
    assert row["status"] in ("processed", "partial", "failed")
    for e in body["errors"]:
        properties.precise(e)
    for rec in body["records"]:
        if rec["status"] == "accepted":
            continue
        assert rec["errors"], rec
        for e in rec["errors"]:
            properties.precise(e)
        dl = repo.get_dead_letter(rec["dead_letter_id"])
        assert dl is not None and dl["reason"] and dl["payload"] is not None, rec
        if rec["key"] == "file":
            assert bytes(dl["payload"]) == payload
        assert dl["record_key"] == (None if rec["key"] == "file" else rec["key"]), (
            dl["record_key"],
            rec["key"],
        )
    return body


def outcomes(body: dict) -> dict[str, str]:
    """Record key → accepted | rejected, from an ingest answer."""
    return {rec["key"]: rec["status"] for rec in body["records"]}


class Listener:
    """The real MLLP listener on a loopback port, its event loop in a thread of its own."""

    def __init__(self, store) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = MllpServer(store, port=0, max_bytes=1024 * 1024, workers=2, idle_timeout=30)
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def frames(stream: bytes) -> list[bytes]:
    """The complete MLLP frames of a byte stream: VT … FS CR (bytes outside frames are ignored)."""
    out, pos = [], 0
    while (start := stream.find(VT, pos)) >= 0 and (end := stream.find(END, start + 1)) >= 0:
        out.append(stream[start + 1 : end])
        pos = end + 2
    return out


def exchange(port: int, chunks: list[bytes], answers: int) -> list[bytes]:
    """Write the chunks on one connection and read `answers` ACK frames back."""
    acks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        buf = b""
        while len(acks) < answers:
            data = sock.recv(65536)
            assert data, f"connection closed after {len(acks)} of {answers} ACKs"
            buf += data
            while (end := buf.find(END)) >= 0:
                assert buf.startswith(VT), buf[:80]
                acks.append(buf[1:end])
                buf = buf[end + 2 :]
    return acks


def inbox_payloads(store, n: int) -> list[bytes]:
    """The payloads of the newest `n` inbox rows, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.payload).order_by(inbox.c.inbox_id.desc()).limit(n)).all()
    return [bytes(r.payload) for r in reversed(rows)]
