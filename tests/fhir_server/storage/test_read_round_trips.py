"""Reads and searches on PostgreSQL cost one round trip: no BEGIN before, no ROLLBACK after (issue 20).

The client side of the wire protocol is recorded with libpq's own trace on the store's real pooled
connections; a round trip is one simple Query or one extended-protocol Sync.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from fhir_server.search.query import parse_request
from fhir_server.storage.base import StorageRefused
from tests.fhir_server.vn_data import CCCD, observation, patient


@pytest.fixture
def pg_store(store):
    """The store, on PostgreSQL only (SQLite has no wire protocol to count)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("round trips are a PostgreSQL matter")
    return store


class WireTrace:
    """libpq's client-side protocol trace of every connection the store checks out."""

    def __init__(self, store, path: Path) -> None:
        self.path = path
        self.file = path.open("w")
        event.listen(store.engine, "checkout", self._on_checkout)
        self.store = store

    def _on_checkout(self, dbapi_conn, _record, _proxy) -> None:
        dbapi_conn.pgconn.trace(self.file.fileno())

    def messages(self) -> list[str]:
        """Frontend messages sent so far: the simple query text, or the extended-protocol message name."""
        self.file.flush()
        out = []
        for line in self.path.read_text().splitlines():
            cols = line.split("\t")
            if len(cols) >= 4 and cols[1] == "F":
                out.append(cols[3].strip() + (" " + cols[4].strip() if cols[3] == "Query" else ""))
        return out

    def round_trips(self) -> int:
        """Simple queries plus Syncs: each waits for the server once."""
        return sum(1 for m in self.messages() if m.startswith("Query") or m == "Sync")

    def close(self) -> None:
        event.remove(self.store.engine, "checkout", self._on_checkout)
        self.file.close()


@pytest.fixture
def trace(pg_store, tmp_path):
    t = WireTrace(pg_store, tmp_path / "libpq-trace.txt")
    yield t
    t.close()


def _write(store, *bodies: dict) -> None:
    with store.begin() as tx:
        for body in bodies:
            tx.put(body, body["id"], "PUT")


def test_a_read_by_id_is_one_round_trip(pg_store, trace):
    _write(pg_store, patient(res_id="bn-1"))
    before = len(trace.messages())
    assert pg_store.read("Patient", "bn-1").res_id == "bn-1"
    sent = trace.messages()[before:]
    assert sum(1 for m in sent if m.startswith("Query") or m == "Sync") == 1
    assert not any(m.startswith('Query "BEGIN') or m == 'Query "ROLLBACK"' for m in sent)


def test_an_identifier_search_is_one_round_trip(pg_store, trace):
    _write(pg_store, patient(res_id="bn-2", cccd="079090009999"))
    pg_store.refresh_registry()  # the once-a-second parameter check is not part of the search
    req = parse_request([("identifier", f"{CCCD}|079090009999")])
    before = trace.round_trips()
    page = pg_store.search("Patient", req, base_url="http://test/fhir")
    assert [hit.res_id for hit in page.rows] == ["bn-2"]
    assert trace.round_trips() - before == 1


def test_a_patient_scoped_search_is_one_round_trip(pg_store, trace):
    _write(pg_store, patient(res_id="bn-3"), observation("Patient/bn-3", res_id="xn-3"))
    pg_store.refresh_registry()
    req = parse_request([("subject", "Patient/bn-3"), ("code", "2345-7")])
    before = trace.round_trips()
    page = pg_store.search("Observation", req, base_url="http://test/fhir")
    assert [hit.res_id for hit in page.rows] == ["xn-3"]
    assert trace.round_trips() - before == 1


def test_a_write_after_reads_on_the_same_connections_is_still_one_transaction(pg_store, trace):
    _write(pg_store, patient(res_id="bn-4"))
    for _ in range(10):  # every pooled connection has served an autocommit read
        pg_store.read("Patient", "bn-4")
    with pytest.raises(StorageRefused):
        with pg_store.begin() as tx:
            tx.put(patient(res_id="bn-5"), "bn-5", "PUT")
            tx.flush()
            raise StorageRefused("abandoned half way")
    assert pg_store.read("Patient", "bn-5") is None
    assert any(m.startswith('Query "BEGIN') for m in trace.messages())


def test_reads_in_transactions_put_reads_searches_and_link_lookups_back_in_a_transaction(pg_store, trace):
    _write(pg_store, patient(res_id="bn-6", cccd="079090008888"))
    pg_store.refresh_registry()
    pg_store.read_in_transactions()  # LIENTHONG_READ_AUTOCOMMIT=false
    for ask in (
        lambda: pg_store.read("Patient", "bn-6"),
        lambda: pg_store.search(
            "Patient", parse_request([("identifier", f"{CCCD}|079090008888")]), base_url="http://test/fhir"
        ),
        lambda: pg_store.identity.linked_ids("bn-6"),
    ):
        before = len(trace.messages())
        ask()
        assert any(m.startswith('Query "BEGIN') for m in trace.messages()[before:])
