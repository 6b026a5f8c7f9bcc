"""Per-client rate limit (issue 13): a token bucket per caller; 429 OperationOutcome with Retry-After;
trusted system clients exempt; off unless configured."""

from __future__ import annotations

import httpx
import pytest

from lienthong.app import create_app
from tests.fhir_server.api.test_audit import SECRET, bearer


@pytest.fixture
def limited_app(settings, store):
    """Auth on (audit off to keep this about the limiter), 3 requests of burst, refilled very slowly."""
    app = create_app(
        settings.with_(
            auth_mode="jwt",
            jwt_secret=SECRET,
            audit="off",
            rate_limit=0.001,
            rate_limit_burst=3,
            rate_limit_exempt="hub-so-y-te",
        ),
        store=store,
    )
    return app


def _client(app, address: str = "10.79.0.20", **headers) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://test/fhir",
        headers=headers,
    )


async def test_client_over_its_budget_gets_429_with_retry_after(limited_app):
    async with _client(limited_app, **bearer(sub="his-79001")) as c:
        statuses = [(await c.get("Patient/khong-co")).status_code for _ in range(4)]
        r = await c.get("Patient/khong-co")
    assert statuses == [404, 404, 404, 429]
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["issue"][0]["code"] == "throttled"


async def test_each_client_has_its_own_bucket(limited_app):
    async with _client(limited_app, **bearer(sub="his-79001")) as first:
        for _ in range(3):
            await first.get("Patient/khong-co")
        assert (await first.get("Patient/khong-co")).status_code == 429
    async with _client(limited_app, **bearer(sub="his-01001")) as second:
        assert (await second.get("Patient/khong-co")).status_code == 404


async def test_trusted_system_client_is_not_limited(limited_app):
    async with _client(limited_app, **bearer(sub="hub-so-y-te")) as hub:
        statuses = {(await hub.get("Patient/khong-co")).status_code for _ in range(10)}
    assert statuses == {404}


async def test_without_auth_the_limit_is_per_address(settings, store):
    app = create_app(settings.with_(rate_limit=0.001, rate_limit_burst=1), store=store)
    async with _client(app, "10.79.0.21") as a, _client(app, "10.79.0.22") as b:
        assert (await a.get("Patient/khong-co")).status_code == 404
        assert (await a.get("Patient/khong-co")).status_code == 429
        assert (await b.get("Patient/khong-co")).status_code == 404


async def test_no_limit_unless_configured(client):
    statuses = {(await client.get("Patient/khong-co")).status_code for _ in range(30)}
    assert statuses == {404}
