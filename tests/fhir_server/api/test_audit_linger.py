"""The audit writer gathers the accesses of a moment into one transaction (issue 20, read tail): a lone
client's reads were each written in a transaction of their own, beside the next read. Whoever waits
for the trail (flush, close, a request blocked on a full queue) does not wait out the gathering.

Real app with JWT auth (audit on), SQLite and PostgreSQL."""

from __future__ import annotations

import time

import httpx
from jose import jwt

from lienthong.app import create_app

SECRET = "khoa-bi-mat-cua-so-y-te-tinh-dai-du-32-byte!"


def _client(app) -> httpx.AsyncClient:
    token = jwt.encode(
        {"sub": "his-79001", "scope": "system/*.*", "exp": int(time.time()) + 300}, SECRET, algorithm="HS256"
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/fhir",
        headers={"Authorization": f"Bearer {token}"},
    )


def _audited(settings, store, **more):
    return create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET, **more), store=store)


async def test_reads_close_together_are_audited_in_one_transaction(settings, store):
    app = _audited(settings, store, audit_linger_ms=60_000)  # far longer than the five reads take
    trail = app.state.audit_trail
    try:
        async with _client(app) as c:
            for _ in range(5):
                assert (await c.get("Patient/khong-co")).status_code == 404
        assert trail.flush(timeout=30)
        assert (trail.written, trail.batches) == (5, 1)
        assert store.count_current("AuditEvent") == 5
    finally:
        trail.close()


async def test_without_linger_each_lone_read_is_written_on_its_own(settings, store):
    app = _audited(settings, store, audit_linger_ms=0)
    trail = app.state.audit_trail
    try:
        async with _client(app) as c:
            for _ in range(3):
                assert (await c.get("Patient/khong-co")).status_code == 404
                assert trail.flush(timeout=30)
        assert (trail.written, trail.batches) == (3, 3)
    finally:
        trail.close()


async def test_a_request_blocked_on_a_full_queue_cuts_the_linger_short(settings, store):
    app = _audited(settings, store, audit_linger_ms=60_000, audit_queue_size=1, audit_block_timeout=20)
    trail = app.state.audit_trail
    try:
        async with _client(app) as c:
            assert (await c.get("Patient/khong-co")).status_code == 404
            # the one slot is taken by an access the writer holds for a minute; this read must not 503
            assert (await c.get("Patient/khong-co")).status_code == 404
        assert trail.flush(timeout=30)
        assert trail.written == 2
    finally:
        trail.close()
