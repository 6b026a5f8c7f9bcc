"""Concurrent writers: optimistic locking with If-Match lets exactly one of two racing updates win."""

from __future__ import annotations

import threading

import httpx

from tests.server.vn_data import patient


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
