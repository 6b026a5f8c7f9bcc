"""Identity linking survives a SIGKILL of the MLLP listener (issue 12, item 4): every Patient whose
message was answered AA is linked once the listener runs again, because pending linking work is
queued in `identity_pending` in the same transaction as the data, not held in memory."""

from __future__ import annotations

import threading
import time

import orjson

from bench.bench_crash import _sender
from bench.bench_mllp import make_messages
from fhir_server.search.run import run_search
from fhir_server.storage.sql.identity import IdentityRepository
from tests.processes import EXE, Proc, child_env, free_port, wait_port


def _listener(db_url: str, port: int, tmp_path, name: str) -> Proc:
    p = Proc(
        [EXE, "mllp", "--db", db_url, "--port", str(port)],
        child_env(LIENTHONG_LINK_ON_INGEST="true"),
        tmp_path / f"{name}.log",
    )
    p.start()
    wait_port(port, p)
    return p


def _patient_ids(store) -> list[str]:
    bundle = orjson.loads(
        run_search(store, "Patient", [("_count", "1000"), ("_elements", "id")], "http://t/fhir")
    )
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def _at_cho_ray(raw: bytes) -> bytes:
    """The same person's message from a second hospital: its own facility, MRN and control id."""
    return raw.replace(b"BV_BACHMAI", b"BV_CHORAY").replace(b"||BN", b"||CR").replace(b"|B0", b"|C0")


def test_every_aa_acked_patient_is_linked_after_the_listener_is_killed(db_url, store, tmp_path):
    base = make_messages(50, seed=31)
    messages = [m for pair in zip(base, map(_at_cho_ray, base)) for m in pair]  # 50 people, 2 hospitals
    port = free_port()
    first = _listener(db_url, port, tmp_path, "mllp-1")
    acks: dict[bytes, int] = {}
    stop_at = time.time() + 300
    senders = [threading.Thread(target=_sender, args=(port, messages[i::4], acks, stop_at)) for i in range(4)]
    for t in senders:
        t.start()
    while len(acks) < 40 and time.time() < stop_at:
        time.sleep(0.01)
    first.kill9()
    acked_before_kill = len(acks)
    second = _listener(db_url, port, tmp_path, "mllp-2")
    try:
        for t in senders:
            t.join()
        identity = IdentityRepository(store.engine)
        deadline = time.time() + 120
        while identity.pending(limit=10) and time.time() < deadline:
            time.sleep(0.2)
        assert identity.pending(limit=10) == []
    finally:
        second.stop()
    assert acked_before_kill >= 40 and len(acks) == len(messages)
    patients = _patient_ids(store)
    assert len(patients) == 100
    unlinked = [p for p in patients if identity.person_of(p) is None]
    assert unlinked == []
