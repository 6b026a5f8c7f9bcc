"""Crash safety, by counting (bounded versions of bench/bench_crash.py): real `lienthong serve`,
`lienthong worker` and `lienthong mllp` processes on one PostgreSQL database and the real JetStream,
killed with SIGKILL during ingest (or their database connections terminated), restarted; then every
payload must be committed exactly once — no payload lost, none still queued or in the stream, no dead
letter, and every resource at exactly the version a plain one-process ingest of the same payloads
gives (no extra version from a re-delivery)."""

from __future__ import annotations

import os

import pytest

from adapters.synth import generate
from bench.bench_crash import http_scenario, mllp_scenario, pg_cut_scenario, scenario
from bench.bench_mllp import make_messages

PG_ADMIN = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def files() -> list[bytes]:
    """100 QĐ130 visits from 4 hospitals."""
    return [v.xml for v in generate(hospitals=4, visits=100, seed=5).visits]


def _assert_exactly_once(counts: dict) -> None:
    detail = {k: v for k, v in counts.items() if k != "events"}
    assert counts["distinct_committed"] == counts["payloads"], detail
    assert not counts["by_status"].get("queued"), detail
    assert counts["pending"] == counts["unacked"] == 0, detail
    assert counts["dead_letters"] == 0, detail
    assert counts["missing"] == counts["unexpected"] == 0, detail
    # Version counts follow arrival order under the re-send policy (bench/bench_crash.py verify): not compared.
    assert counts["history_rows"] == counts["history_expected"], detail


def test_killing_a_worker_and_the_api_server_mid_ingest_loses_and_duplicates_nothing(
    pg_session_url, nats_url, files
):
    counts = scenario(
        PG_ADMIN, nats_url, http_scenario, files, {"worker_at": 35, "api_at": 70, "drain_timeout": 240}
    )
    assert len(counts["events"]) == 2
    _assert_exactly_once(counts)
    assert counts["accepted_202"] == len(files)


def test_killing_the_mllp_listener_mid_stream_loses_and_duplicates_nothing(pg_session_url, nats_url):
    messages = make_messages(100, seed=21)
    counts = scenario(PG_ADMIN, nats_url, mllp_scenario, messages, 0.3, timeout=300)
    assert counts["events"] and "killed" in counts["events"][0]
    _assert_exactly_once(counts)
    assert counts["answered_aa"] == len(messages)  # every sender got its AA in the end


def test_workers_reconnect_after_their_database_connections_are_terminated(pg_session_url, nats_url, files):
    counts = scenario(PG_ADMIN, nats_url, pg_cut_scenario, files, 3, 1.0)
    assert counts["backends_terminated"] > 0
    assert counts["workers_alive"] == 2
    _assert_exactly_once(counts)
