"""Bearer JWT verification and SMART scopes, when LIENTHONG_AUTH=jwt."""

from __future__ import annotations

import time

import httpx
import pytest
from jose import jwt

from lienthong.app import create_app
from tests.fhir_server.vn_data import patient

SECRET = "khoa-bi-mat-cua-benh-vien-79001-dai-du-32-byte"


def token(scope: str, exp_in: int = 300, key: str = SECRET) -> str:
    """A signed access token like a SMART backend-services token endpoint would issue."""
    return jwt.encode(
        {"sub": "his-79001", "scope": scope, "exp": int(time.time()) + exp_in, "facility": "79001"},
        key,
        algorithm="HS256",
    )


@pytest.fixture
async def secured(settings, store):
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
        yield c


async def test_missing_token_is_401_with_www_authenticate(secured):
    r = await secured.get("Patient/x")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["issue"][0]["code"] == "login"


async def test_capability_statement_is_public(secured):
    assert (await secured.get("metadata")).status_code == 200


async def test_write_scope_allows_create(secured):
    r = await secured.post(
        "Patient", json=patient(), headers={"Authorization": f"Bearer {token('system/*.write')}"}
    )
    assert r.status_code == 201


async def test_read_only_scope_cannot_write(secured):
    r = await secured.post(
        "Patient", json=patient(), headers={"Authorization": f"Bearer {token('system/Patient.read')}"}
    )
    assert r.status_code == 403


async def test_type_scope_does_not_cover_other_types(secured):
    r = await secured.get(
        "Observation/x", headers={"Authorization": f"Bearer {token('system/Patient.read')}"}
    )
    assert r.status_code == 403


async def test_expired_token_is_401(secured):
    r = await secured.get(
        "Patient/x", headers={"Authorization": f"Bearer {token('system/*.read', exp_in=-60)}"}
    )
    assert r.status_code == 401
    assert "expired" in r.json()["issue"][0]["diagnostics"].lower()


async def test_token_signed_with_another_key_is_401(secured):
    forged = token("system/*.*", key="khoa-gia-mao-khong-phai-cua-may-chu-nay-32b")
    r = await secured.get("Patient/x", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_auth_on_without_key_refuses_to_start(settings, store):
    with pytest.raises(ValueError):
        create_app(settings.with_(auth_mode="jwt"), store=store)
