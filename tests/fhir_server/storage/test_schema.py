"""The app creates and upgrades its own schema: no manual DDL on SQLite or PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from fhir_server.storage import open_store
from fhir_server.storage.sql.migrate import SCHEMA_VERSION


def test_index_added_after_the_database_was_created_appears_on_next_start(db_url):
    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_history_instance"))
    assert "ix_history_instance" not in {
        i["name"] for i in inspect(store.engine).get_indexes("resource_history")
    }
    store.engine.dispose()
    again = open_store(db_url)
    assert "ix_history_instance" in {i["name"] for i in inspect(again.engine).get_indexes("resource_history")}
    again.engine.dispose()


def test_string_indexes_of_an_older_database_are_replaced_on_next_start(db_url):
    store = open_store(db_url)
    with store.engine.begin() as conn:  # the two string indexes a database created before issue 20 has
        conn.execute(text("CREATE INDEX ix_sp_string_value ON sp_string (res_type, param, value)"))
        conn.execute(text("CREATE INDEX ix_sp_string_rid ON sp_string (rid, param)"))
    store.engine.dispose()
    again = open_store(db_url)
    names = {i["name"] for i in inspect(again.engine).get_indexes("sp_string")}
    assert names == {"ix_sp_string_value_rid", "ix_sp_string_rid_cover"}
    again.engine.dispose()


def test_a_newer_schema_version_is_refused(db_url):
    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 999 WHERE component = 'core'"))
    try:
        with pytest.raises(RuntimeError, match="newer"):
            open_store(db_url)
    finally:  # the PostgreSQL database is shared by the session's tests
        with store.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE schema_version SET version = {SCHEMA_VERSION} WHERE component = 'core'")
            )
        store.engine.dispose()
