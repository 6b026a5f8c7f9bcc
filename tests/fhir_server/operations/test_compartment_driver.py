"""On PostgreSQL a `$everything` page runs as driver SQL compiled once per shape, with binary results
(issue 20): for every shape it returns exactly the rows the SQLAlchemy statement returns."""

from __future__ import annotations

import itertools

import pytest

from fhir_server.search.page import CompartmentQuery
from fhir_server.storage.sql import compartment as sql_compartment
from fhir_server.timeutil import parse_instant
from tests.fhir_server.operations import vn_record as rec


@pytest.fixture
def pg_store(store):
    """The store, on PostgreSQL only (the driver path is PostgreSQL's)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the driver path runs on PostgreSQL only")
    return store


def _queries() -> list[CompartmentQuery]:
    start, end = parse_instant("2024-06-01T00:00:00Z"), parse_instant("2024-12-31T23:59:59Z")
    out = []
    for has_start, has_end, types, since, count, content in itertools.product(
        (False, True),
        (False, True),
        (None, ("Observation",), ("Encounter", "Condition", "Organization")),
        (None, 0),
        (None, 2),
        (True, False),
    ):
        out.append(
            CompartmentQuery(
                start=start if has_start else None,
                end=end if has_end else None,
                types=types,
                since=since,
                count=count,
                content=content,
            )
        )
    return out


def test_every_shape_returns_the_sqlalchemy_rows(pg_store):
    ids = rec.load_and_link(pg_store)
    for q in _queries():
        stmt, params = sql_compartment.statement_and_params(ids, q)
        with pg_store.reader.connect() as conn:
            expected = [tuple(row) for row in conn.execute(stmt, params)]
            got = sql_compartment._page_rows(conn, ids, q)
        assert [tuple(r) for r in got] == expected, q
        assert expected, q  # the shape has rows to compare


def test_the_next_page_after_a_keyset_cursor_matches(pg_store):
    ids = rec.load_and_link(pg_store)
    first = pg_store.compartment(ids, CompartmentQuery(count=3))
    assert first.next_after is not None
    q = CompartmentQuery(count=3, after=first.next_after)
    stmt, params = sql_compartment.statement_and_params(ids, q)
    with pg_store.reader.connect() as conn:
        expected = [tuple(row) for row in conn.execute(stmt, params)]
        got = sql_compartment._page_rows(conn, ids, q)
    assert [tuple(r) for r in got] == expected and expected


def test_one_patient_and_a_linked_pair_use_their_own_statements(pg_store):
    ids = rec.load_and_link(pg_store)
    alone = pg_store.compartment([rec.PC], CompartmentQuery())
    pair = pg_store.compartment(ids, CompartmentQuery())
    assert {r.res_id for r in alone.rows} == {rec.PC, "obs-other", "org-cho-ray"}
    assert {rec.PA, rec.PB} <= {r.res_id for r in pair.rows} and "obs-other" not in {
        r.res_id for r in pair.rows
    }


def test_stored_bytes_arrive_unchanged(pg_store):
    ids = rec.load_and_link(pg_store)
    page = pg_store.compartment(ids, CompartmentQuery())
    for row in page.rows:
        stored = pg_store.read(row.res_type, row.res_id)
        assert bytes(row.content) == bytes(stored.content), row.res_id
