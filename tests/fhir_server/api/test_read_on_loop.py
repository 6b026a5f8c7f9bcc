"""A read by id on the direct route runs on the event loop's own thread when a pooled connection is idle
(issue 20, read tail): under concurrent reads a pool thread could wait seconds for the GIL behind the
busy loop. With no idle connection (the read would wait for or open one), it still goes to a thread.

Real app over SQLite and PostgreSQL; the thread of the read's SELECT is seen through SQLAlchemy's
pool's checkout event."""

from __future__ import annotations

import threading

import httpx
from sqlalchemy import event

from lienthong.app import create_app
from tests.fhir_server.vn_data import patient


def _read_threads(store) -> list[int]:
    """Thread idents of the connection checkouts from now on (a read by id checks out one connection;
    on PostgreSQL it then runs on the driver connection itself, past SQLAlchemy's statement events)."""
    seen: list[int] = []

    @event.listens_for(store.engine, "checkout")
    def _seen(*_args) -> None:
        seen.append(threading.get_ident())

    return seen


async def _read_twice(app, store) -> list[int]:
    """Store a Patient, warm the pool with one read, then read it again and name the thread that did."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
        r = await c.put("Patient/p-loop", json=patient(name="LÊ VĂN CƯỜNG", res_id="p-loop"))
        assert r.status_code == 201, r.text
        assert (await c.get("Patient/p-loop")).status_code == 200
        seen = _read_threads(store)
        r = await c.get("Patient/p-loop")
        assert r.status_code == 200 and r.json()["id"] == "p-loop"
    return seen


async def test_a_read_runs_on_the_loop_thread_when_a_connection_is_idle(settings, store):
    seen = await _read_twice(create_app(settings, store=store), store)
    assert seen and seen[-1] == threading.get_ident()


async def test_with_read_on_loop_off_the_read_runs_in_a_pool_thread(settings, store):
    seen = await _read_twice(create_app(settings.with_(read_on_loop=False), store=store), store)
    assert seen and seen[-1] != threading.get_ident()


async def test_a_read_that_would_wait_for_a_connection_goes_to_a_thread(settings, store):
    app = create_app(settings, store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
        r = await c.put("Patient/p-loop", json=patient(name="LÊ VĂN CƯỜNG", res_id="p-loop"))
        assert r.status_code == 201, r.text
        store.engine.dispose()  # no idle connection: the read must open one
        seen = _read_threads(store)
        assert (await c.get("Patient/p-loop")).status_code == 200
    assert seen and seen[-1] != threading.get_ident()
