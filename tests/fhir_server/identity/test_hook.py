"""Linking on ingest is a subscriber of the store's commit hooks, with a durable queue of pending work."""

from __future__ import annotations

import pytest

from fhir_server.identity.hook import Linker
from fhir_server.identity.service import linked_patient_ids
from fhir_server.interactions.group import commit_group
from fhir_server.storage import open_store
from tests.fhir_server.identity.conftest import patient

CCCD = "079190000111"


def _bundle(*patients: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": p, "request": {"method": "PUT", "url": f"Patient/{p['id']}"}} for p in patients
        ],
    }


def _two_hospitals() -> tuple[dict, dict]:
    a = patient("79001", "BN001", "NGUYỄN VĂN AN", "1990-05-01", "male", cccd=CCCD)
    b = patient("01002", "HN-77", "NGUYỄN VĂN AN", "1990-05-01", "male", cccd=CCCD)
    return a, b


@pytest.fixture
def bare_store(db_url):
    """A store with no subscribers: each test attaches the linker it needs."""
    s = open_store(db_url)
    yield s
    s.close()


def test_ingest_commits_are_linked_right_after_commit(bare_store) -> None:
    Linker(bare_store).attach()
    a, b = _two_hospitals()
    commit_group(bare_store, [_bundle(a), _bundle(b)], origin="ingest")
    assert linked_patient_ids(bare_store, a["id"]) == sorted([a["id"], b["id"]])
    assert bare_store.identity.pending() == []


def test_api_writes_are_not_linked_by_the_ingest_subscriber(bare_store) -> None:
    Linker(bare_store).attach()
    a, b = _two_hospitals()
    commit_group(bare_store, [_bundle(a), _bundle(b)], origin="api")
    assert linked_patient_ids(bare_store, a["id"]) == [a["id"]]
    assert bare_store.identity.pending() == []


def test_deferred_linking_waits_in_the_durable_queue_until_drained(bare_store, db_url) -> None:
    Linker(bare_store, immediate=False).attach()
    a, b = _two_hospitals()
    commit_group(bare_store, [_bundle(a, b)], origin="ingest")
    assert sorted(bare_store.identity.pending()) == sorted([a["id"], b["id"]])
    assert linked_patient_ids(bare_store, a["id"]) == [a["id"]]
    # Another process (after a crash, say) finds the same work in the database and finishes it.
    other = open_store(db_url)
    try:
        assert Linker(other, immediate=False).drain() == 2
        assert linked_patient_ids(other, a["id"]) == sorted([a["id"], b["id"]])
        assert other.identity.pending() == []
    finally:
        other.close()


def test_a_rolled_back_write_queues_nothing(bare_store) -> None:
    Linker(bare_store, immediate=False).attach()
    a, _ = _two_hospitals()
    with pytest.raises(RuntimeError):
        with bare_store.begin(origin="ingest") as tx:
            tx.put(a, a["id"], "PUT")
            tx.flush()
            raise RuntimeError("abort")
    assert bare_store.identity.pending() == []
    assert bare_store.read("Patient", a["id"]) is None
