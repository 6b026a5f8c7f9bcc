"""Denial paths of token verification: each way a bearer token can be wrong answers 401, never data."""

from __future__ import annotations

from fastapi import Request

from tests.fhir_server.auth.helpers import bearer, token, unsigned


async def test_request_without_token_is_401_with_bearer_challenge(secured, records):
    r = await secured.get("Patient/an")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["issue"][0]["code"] == "login"


async def test_malformed_token_is_401(secured, records):
    r = await secured.get("Patient/an", headers={"Authorization": "Bearer khong-phai-jwt"})
    assert r.status_code == 401


async def test_unsigned_alg_none_token_is_401(secured, records):
    r = await secured.get("Patient/an", headers={"Authorization": f"Bearer {unsigned('system/*.*')}"})
    assert r.status_code == 401
    assert "alg=none" in r.json()["issue"][0]["diagnostics"]


async def test_token_signed_with_another_key_is_401(secured, records):
    r = await secured.get(
        "Patient/an", headers=bearer("system/*.*", key="khoa-gia-mao-cua-ke-tan-cong-32-byte-dai")
    )
    assert r.status_code == 401


async def test_expired_token_is_401(secured, records):
    r = await secured.get("Patient/an", headers=bearer("system/*.read", exp_in=-60))
    assert r.status_code == 401
    assert "expired" in r.json()["issue"][0]["diagnostics"].lower()


async def test_token_without_exp_is_401(secured, records):
    r = await secured.get("Patient/an", headers=bearer("system/*.read", exp_in=None))
    assert r.status_code == 401


async def test_token_for_another_audience_is_401(secured, records):
    r = await secured.get("Patient/an", headers=bearer("system/*.read", aud="https://may-chu-khac.vn/fhir"))
    assert r.status_code == 401


async def test_token_without_aud_is_401_when_an_audience_is_configured(secured, records):
    r = await secured.get("Patient/an", headers=bearer("system/*.read", aud=None))
    assert r.status_code == 401


async def test_bearer_scheme_is_required(secured, records):
    r = await secured.get("Patient/an", headers={"Authorization": f"Basic {token('system/*.*')}"})
    assert r.status_code == 401


async def test_capability_statement_is_public(secured):
    assert (await secured.get("metadata")).status_code == 200


async def test_liveness_is_public(secured):
    assert (await secured.get("http://test/healthz")).status_code == 200


async def test_metrics_need_a_token(secured):
    assert (await secured.get("http://test/metrics")).status_code == 401


async def test_openapi_document_needs_a_token(secured):
    assert (await secured.get("http://test/openapi.json")).status_code == 401


async def test_api_docs_need_a_token(secured):
    assert (await secured.get("http://test/docs")).status_code == 401


async def test_metrics_answer_a_valid_system_token(secured):
    assert (await secured.get("http://test/metrics", headers=bearer("system/Patient.rs"))).status_code == 200


def test_jwt_mode_without_any_key_refuses_to_start(settings, store):
    import pytest

    from lienthong.app import create_app

    with pytest.raises(ValueError):
        create_app(settings.with_(auth_mode="jwt"), store=store)


async def test_routes_see_the_verified_caller_on_request_state(settings, store):
    import httpx
    from fastapi import APIRouter

    from fhir_server.api.app import create_app
    from tests.fhir_server.auth.helpers import AUDIENCE, SECRET

    probe = APIRouter()

    @probe.get("/probe/principal")
    async def who(request: Request) -> dict:
        p = request.state.principal
        return {"subject": p.subject, "facility": p.facility, "kind": p.kind}

    app = create_app(
        settings.with_(auth_mode="jwt", jwt_secret=SECRET, jwt_audience=AUDIENCE),
        store=store,
        extra_routers=[probe],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.get("/probe/principal", headers=bearer("system/*.cruds", facility="79001"))
    assert r.status_code == 200
    assert r.json() == {"subject": "his-benh-vien-cho-ray", "facility": "79001", "kind": "system"}
