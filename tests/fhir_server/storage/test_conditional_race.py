"""Conditional writes are atomic on their criteria: racing clients produce exactly one resource.

Eight real httpx clients against a real uvicorn server send the same conditional write at the same
instant (a barrier), 25 rounds with a fresh identifier each; afterwards exactly one Patient carries
the identifier, and exactly one client was told it created it (201), the others that it existed (200).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from tests.fhir_server.vn_data import patient

CLIENTS = 8
ROUNDS = 25
SYSTEM = "urn:oid:1.2.704.79.1"  # a hospital's own patient number system (MA_BN)
JSON = {"Content-Type": "application/fhir+json"}


def _body(value: str) -> dict:
    body = patient(name="LÊ THỊ HỒNG NHUNG", cccd=f"0791{value[-8:]:0>8}")
    body["identifier"].append({"system": SYSTEM, "value": value})
    return body


def _create(c: httpx.Client, value: str) -> int:
    r = c.post(
        "/Patient", json=_body(value), headers={**JSON, "If-None-Exist": f"identifier={SYSTEM}|{value}"}
    )
    return r.status_code


def _update_as_create(c: httpx.Client, value: str) -> int:
    r = c.put(f"/Patient?identifier={quote(f'{SYSTEM}|{value}')}", json=_body(value), headers=JSON)
    return r.status_code


def _transaction_if_none_exist(c: httpx.Client, value: str) -> int:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c1a52-0000-4000-8000-000000000001",
                "resource": _body(value),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYSTEM}|{value}",
                },
            }
        ],
    }
    r = c.post("", json=bundle, headers=JSON)
    assert r.status_code == 200, r.text
    return int(r.json()["entry"][0]["response"]["status"].split()[0])


def _race(base: str, send: Callable[[httpx.Client, str], int], value: str) -> list[int]:
    barrier = threading.Barrier(CLIENTS)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            c.get("/metadata")  # connection open before the barrier, so all send together
            barrier.wait()
            status = send(c, value)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(statuses)


@pytest.mark.parametrize(
    "send",
    [_create, _update_as_create, _transaction_if_none_exist],
    ids=["if-none-exist", "conditional-update", "transaction-ifNoneExist"],
)
def test_racing_conditional_writes_make_exactly_one_patient_per_identifier(live_server, send):
    for round_no in range(ROUNDS):
        value = f"BN{round_no:08d}"
        statuses = _race(live_server, send, value)
        assert statuses == [200] * (CLIENTS - 1) + [201], f"round {round_no}: {statuses}"
    with httpx.Client(base_url=live_server, timeout=60) as c:
        for round_no in range(ROUNDS):
            found = c.get(
                "/Patient", params={"identifier": f"{SYSTEM}|BN{round_no:08d}", "_summary": "count"}
            )
            assert found.json()["total"] == 1, f"round {round_no}"
        assert c.get("/Patient", params={"_summary": "count"}).json()["total"] == ROUNDS


def _if_none_exist_bundle(value: str) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _body(value),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYSTEM}|{value}",
                },
            }
        ],
    }


def test_group_commit_of_two_bundles_creating_the_same_patient_conditionally_makes_one(store):
    from fhir_server.interactions.group import commit_group

    outcomes = commit_group(store, [_if_none_exist_bundle("BN00000042")] * 2, origin="api")
    statuses = [o["entry"][0]["response"]["status"] for o in outcomes if isinstance(o, dict)]
    assert statuses == ["201 Created", "200 OK"]
    assert len(list(store.iter_current("Patient"))) == 1
