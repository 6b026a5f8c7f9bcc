"""Crash leftovers (issue 12, item 4): `lienthong ingest` killed with SIGKILL mid-run leaves inbox rows
"received" (archived, never committed); `lienthong recover` finishes every one of them, and a row a live
process may still be working on (younger than the grace period) is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from adapters.recover import recover
from adapters.repository import ingest_repository
from adapters.synth import generate
from fhir_server.settings import Settings
from tests.processes import EXE

OPEN = ("received", "queued")


def _counts(store) -> dict[str, int]:
    return ingest_repository(store).count_by_status()


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600, env=env)


def test_rows_left_by_a_killed_ingest_are_all_finished_by_recover(db_url, store, tmp_path):
    visits = generate(hospitals=2, visits=80, seed=12).visits
    for i, v in enumerate(visits):
        (tmp_path / f"ho_so_{i:03d}.xml").write_bytes(v.xml)
    proc = subprocess.Popen(
        [EXE, "ingest", str(tmp_path), "--db", db_url, "--batch", "20"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LIENTHONG_LANG": "en"},
    )
    deadline = time.time() + 120
    while not _counts(store).get("received"):  # a batch archived, its data not committed yet
        assert proc.poll() is None and time.time() < deadline, "ingest ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stuck = sum(n for st, n in _counts(store).items() if st in OPEN)
    assert stuck >= 1

    done = _run("recover", "--db", db_url, "--older-than", "0", env={**os.environ, "LIENTHONG_LANG": "en"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{stuck} unfinished inbox row(s): {stuck} finished" in done.stdout
    after = _counts(store)
    assert not any(after.get(st) for st in OPEN), after
    assert after.get("processed", 0) >= stuck


def test_recover_leaves_rows_younger_than_the_grace_period(store):
    repo = ingest_repository(store)
    visit = generate(hospitals=1, visits=1, seed=3).visits[0]
    [inbox_id] = repo.archive_many(
        [
            {
                "payload": visit.xml,
                "source": "file:ho_so.xml",
                "channel": "qd130",
                "summary": {"adapter": "qd130"},
            }
        ]
    )
    stats = recover(store, Settings(database_url="unused"), grace_seconds=300)
    assert stats.claimed == 0
    assert repo.get_inbox(inbox_id)["status"] == "received"


def test_an_unreadable_leftover_is_closed_as_failed_not_retried_forever(store):
    repo = ingest_repository(store)
    visit = generate(hospitals=1, visits=1, seed=4).visits[0]
    good, bad = repo.archive_many(
        [
            {
                "payload": visit.xml,
                "source": "file:ho_so.xml",
                "channel": "qd130",
                "summary": {"adapter": "qd130"},
            },
            {
                "payload": b"\x00\x01 NGUYEN VAN AN",
                "source": "file:hong.xml",
                "channel": "unknown",
                "summary": {},
            },
        ]
    )
    first = recover(store, Settings(database_url="unused"), grace_seconds=0)
    assert first.claimed == 2 and first.finished == 2
    assert repo.get_inbox(good)["status"] == "processed"
    assert repo.get_inbox(bad)["status"] == "failed"
    assert recover(store, Settings(database_url="unused"), grace_seconds=0).claimed == 0
