"""A read by id on PostgreSQL stays prepared on its pooled connection (issue 20, read tail).

psycopg forgets its prepared statements on every ROLLBACK, so a read in a transaction was parsed and
planned by the server every time; in autocommit it is prepared once per pooled connection. The pool's
connections stay transactional for everything else."""

from __future__ import annotations

import pytest

from tests.fhir_server.vn_data import patient

PREPARED_READS = "SELECT count(*) FROM pg_prepared_statements WHERE statement ILIKE '%%FROM resource%%'"


@pytest.fixture
def pg_store(store):
    """The store, on PostgreSQL only, with a fresh pool (one connection once reads run one at a time)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("prepared statements and autocommit reads are PostgreSQL behaviour")
    return store


async def test_repeated_reads_are_prepared_on_their_pooled_connection(client, pg_store):
    r = await client.put("/Patient/p-read", json=patient(name="NGUYỄN VĂN AN", res_id="p-read"))
    assert r.status_code == 201, r.text
    pg_store.engine.dispose()
    for _ in range(10):
        assert pg_store.read("Patient", "p-read").res_id == "p-read"
    raw = pg_store.engine.raw_connection()  # the one connection the reads used
    try:
        cur = raw.cursor()
        cur.execute(PREPARED_READS)
        assert cur.fetchone()[0] == 1
    finally:
        raw.close()


async def test_a_connection_goes_back_to_the_pool_transactional_after_a_read(client, pg_store):
    r = await client.put("/Patient/p-read", json=patient(name="TRẦN THỊ BÌNH", res_id="p-read"))
    assert r.status_code == 201, r.text
    pg_store.engine.dispose()
    assert pg_store.read("Patient", "p-read") is not None
    with pg_store.engine.connect() as conn:  # the connection the read used, handed to a writer
        assert conn.connection.dbapi_connection.autocommit is False
