"""Concurrent writers: optimistic locking with If-Match lets exactly one of two racing updates win."""

from __future__ import annotations

import threading
import time

import httpx
from sqlalchemy import text

from fhir_server.interactions.group import STATS, commit_group
from tests.fhir_server.search.vn_data import transaction
from tests.fhir_server.vn_data import observation, patient


def _race(base: str, res_id: str, version: int) -> list[int]:
    phones = (f"09000000{version}1", f"09000000{version}2")  # both differ from the current content
    barrier = threading.Barrier(len(phones))
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(phone: str) -> None:
        body = dict(patient(res_id=res_id), telecom=[{"system": "phone", "value": phone}])
        with httpx.Client(base_url=base, timeout=30) as c:
            barrier.wait()
            r = c.put(
                f"/Patient/{res_id}",
                json=body,
                headers={"If-Match": f'W/"{version}"', "Content-Type": "application/fhir+json"},
            )
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(statuses)


def test_two_concurrent_updates_with_same_if_match_exactly_one_wins(live_server):
    with httpx.Client(base_url=live_server) as c:
        c.put("/Patient/race", json=patient(res_id="race"), headers={"Content-Type": "application/fhir+json"})
    for round_no in range(5):
        statuses = _race(live_server, "race", round_no + 1)
        assert statuses == [200, 412], f"round {round_no}: {statuses}"
    with httpx.Client(base_url=live_server) as c:
        final = c.get("/Patient/race").json()
    assert final["meta"]["versionId"] == "6"


def test_concurrent_update_as_create_of_same_id_yields_one_version_each(live_server):
    barrier = threading.Barrier(4)
    results: list[int] = []

    def worker(i: int) -> None:
        body = dict(patient(res_id="new-one"), gender=["male", "female", "other", "unknown"][i])
        with httpx.Client(base_url=live_server, timeout=30) as c:
            barrier.wait()
            results.append(
                c.put(
                    "/Patient/new-one", json=body, headers={"Content-Type": "application/fhir+json"}
                ).status_code
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[-1] in (200, 201) and results.count(201) == 1
    with httpx.Client(base_url=live_server) as c:
        hist = c.get("/Patient/new-one/_history").json()
    assert sorted(int(e["resource"]["meta"]["versionId"]) for e in hist["entry"]) == [1, 2, 3, 4]


def _group_racing_an_open_create(store, first: dict, group: list[dict]) -> list:
    """Hold a transaction that created `first` open while another thread group-commits `group`, which
    creates the same resource; commit the holder only once the group is blocked on it (PostgreSQL)."""
    out: list = []
    with store.begin() as holder:
        holder.put(first, first["id"], "PUT")
        holder.flush()  # the row exists, uncommitted
        worker = threading.Thread(target=lambda: out.append(commit_group(store, group, validate=False)))
        worker.start()
        if store.engine.dialect.name == "postgresql":
            _wait_for_lock_wait(holder.conn)
        else:
            time.sleep(0.3)  # SQLite: the group waits in BEGIN IMMEDIATE, there is no race to set up
    worker.join(30)
    return out[0]


def _wait_for_lock_wait(conn) -> None:
    check = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with conn.engine.connect() as probe:
            if probe.execute(check).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("the group commit never blocked on the open create")


def test_group_commit_racing_an_identical_create_writes_nothing_twice(store):
    org = {"resourceType": "Organization", "id": "bv-cho-ray", "name": "Bệnh viện Chợ Rẫy"}
    pat = patient(res_id="p-race")
    before = (STATS.splits, STATS.retries)
    outcomes = _group_racing_an_open_create(store, org, [transaction([org, pat])])
    assert all(isinstance(o, dict) for o in outcomes)
    assert store.read("Organization", "bv-cho-ray").version == 1
    assert len(store.history("Organization", "bv-cho-ray")) == 1
    assert store.read("Patient", "p-race").version == 1
    assert (STATS.splits, STATS.retries) == before


def test_group_commit_racing_a_different_create_runs_again_and_writes_version_2(store):
    first = patient(res_id="p-race", name="TRẦN THỊ BÌNH")
    mine = patient(res_id="p-race", name="TRẦN THỊ BÌNH", cccd="079190004321")
    obs = observation("Patient/p-race", res_id="o-race")
    splits, retries = STATS.splits, STATS.retries
    outcomes = _group_racing_an_open_create(store, first, [transaction([mine, obs])])
    assert all(isinstance(o, dict) for o in outcomes)
    current = store.read("Patient", "p-race")
    assert current.version == 2 and "079190004321" in current.content.decode()
    assert store.read("Observation", "o-race").version == 1
    assert STATS.splits == splits  # the group was redone as a group, not split per Bundle
    if store.engine.dialect.name == "postgresql":
        assert STATS.retries >= retries + 1


async def test_metrics_expose_group_commit_contention(client):
    body = (await client.get("http://test/metrics")).text
    assert f"lienthong_group_commit_retries_total {float(STATS.retries)}" in body
    assert f"lienthong_group_commit_splits_total {float(STATS.splits)}" in body
