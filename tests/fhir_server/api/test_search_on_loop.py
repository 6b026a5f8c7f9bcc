"""A selective search on the direct route (by identifier, by id, or scoped to one referenced resource)
runs on the event loop's thread when a pooled connection is idle, like a read by id (issue 20); a search
that may read more than a page of a selective index stays in a pool thread.

Real app over SQLite and PostgreSQL; the thread of the search's SELECT is seen through SQLAlchemy's
statement event."""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import event

from fhir_server.api.search import selective
from lienthong.app import create_app
from tests.fhir_server.vn_data import CCCD, observation, patient


def _search_threads(store) -> list[int]:
    """Thread idents of the SELECTs that fetch resources from now on."""
    seen: list[int] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_rest) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(threading.get_ident())

    return seen


async def _search(app, store, path: str) -> tuple[dict, list[int]]:
    """Store a patient with a glucose result, warm the pool, then run `path` and name its threads."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
        r = await c.put("Patient/p-loop", json=patient(name="LÊ VĂN CƯỜNG", res_id="p-loop"))
        assert r.status_code == 201, r.text
        r = await c.post("Observation", json=observation("Patient/p-loop"))
        assert r.status_code == 201, r.text
        assert (await c.get("Patient/p-loop")).status_code == 200
        seen = _search_threads(store)
        r = await c.get(path)
        assert r.status_code == 200, r.text
        return r.json(), seen


async def test_an_identifier_search_runs_on_the_loop_thread(settings, store):
    bundle, seen = await _search(
        create_app(settings, store=store), store, f"Patient?identifier={CCCD}|079090001234"
    )
    assert [e["resource"]["id"] for e in bundle.get("entry", [])] == ["p-loop"]
    assert seen and set(seen) == {threading.get_ident()}


async def test_a_patient_scoped_search_runs_on_the_loop_thread(settings, store):
    bundle, seen = await _search(
        create_app(settings, store=store), store, "Observation?subject=Patient/p-loop"
    )
    assert len(bundle["entry"]) == 1
    assert seen and set(seen) == {threading.get_ident()}


async def test_a_search_with_a_total_count_stays_in_a_pool_thread(settings, store):
    _bundle, seen = await _search(
        create_app(settings, store=store), store, "Observation?subject=Patient/p-loop&_total=accurate"
    )
    assert seen and threading.get_ident() not in seen


async def test_with_read_on_loop_off_a_selective_search_runs_in_a_pool_thread(settings, store):
    app = create_app(settings.with_(read_on_loop=False), store=store)
    _bundle, seen = await _search(app, store, "Observation?subject=Patient/p-loop")
    assert seen and threading.get_ident() not in seen


@pytest.mark.parametrize(
    ("res_type", "query", "expected"),
    [
        ("Patient", [("identifier", f"{CCCD}|079090001234")], True),
        ("Patient", [("_id", "p-1"), ("_summary", "true")], True),
        ("Observation", [("subject", "Patient/p-1"), ("code", "2345-7"), ("_count", "20")], True),
        ("Observation", [("patient", "p-1"), ("_sort", "-_lastUpdated")], True),
        ("Patient", [("name", "nguyen van")], False),  # no anchor: a family name covers a third of people
        ("Observation", [("code", "2345-7")], False),
        ("Patient", [("identifier", "a,b")], False),
        ("Observation", [("subject", "Patient/p-1"), ("_count", "1000")], False),
        ("Observation", [("subject", "Patient/p-1"), ("_include", "Observation:subject")], False),
        ("Observation", [("subject", "Patient/p-1"), ("_sort", "date")], False),
        ("Observation", [("subject:Patient.name", "nguyen")], False),
        ("Observation", [("subject", "Patient/p-1"), ("code:not", "2345-7")], False),
        ("Observation", [("subject", "")], False),
        ("Observation", [("no-such-param", "x"), ("subject", "Patient/p-1")], False),
    ],
)
def test_which_searches_are_selective(res_type, query, expected):
    assert selective(res_type, query) is expected
