"""RFC 7009 token revocation at /auth/revoke: a SMART app signs a clinician in (authorization code + PKCE),
then revokes its refresh token; the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from fhir_server.search.run import run_search
from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository
from tests.fhir_server.auth import test_authcode as flow
from tests.fhir_server.auth.test_authcode import APP, APP_SCOPES, CALLBACK, FHIR, exchange, login_code

# the sign-in flow's fixtures: the app with its clinicians and registered app, and the browser+app client
smart_app = flow.smart_app
http = flow.http

OTHER_APP = "app-phong-kham-khac"


@pytest.fixture
def other_app(store):
    """A second registered public app, enabled, with the same scopes."""
    store.auth.add_client(
        ClientRecord(OTHER_APP, "Ứng dụng phòng khám khác", "", APP_SCOPES, None, None, True)
    )
    authcode_repository(store).set_app(OTHER_APP, (CALLBACK,), public=True)
    return OTHER_APP


async def _refresh_token(http) -> str:
    code, verifier, _args = await login_code(http)
    answer = await exchange(http, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()["refresh_token"]


async def _refresh(http, token: str):
    return await http.post(
        "/auth/token", data={"grant_type": "refresh_token", "client_id": APP, "refresh_token": token}
    )


async def test_a_revoked_refresh_token_is_refused_as_invalid_grant(http):
    token = await _refresh_token(http)
    revoked = await http.post(
        "/auth/revoke", data={"token": token, "token_type_hint": "refresh_token", "client_id": APP}
    )
    assert revoked.status_code == 200, revoked.text
    refused = await _refresh(http, token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_revoking_a_spent_token_revokes_the_newer_tokens_of_its_family(http):
    first = await _refresh_token(http)
    rotated = await _refresh(http, first)
    assert rotated.status_code == 200, rotated.text
    assert (await http.post("/auth/revoke", data={"token": first, "client_id": APP})).status_code == 200
    later = await _refresh(http, rotated.json()["refresh_token"])
    assert later.status_code == 400 and later.json()["error"] == "invalid_grant"


async def test_another_client_cannot_revoke_it(http, other_app):
    token = await _refresh_token(http)
    refused = await http.post("/auth/revoke", data={"token": token, "client_id": other_app})
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert refused.json()["error_description"] == "Token này được cấp cho một ứng dụng khác"
    assert (await _refresh(http, token)).status_code == 200


async def test_an_unknown_client_is_refused_before_anything_is_revoked(http):
    token = await _refresh_token(http)
    refused = await http.post("/auth/revoke", data={"token": token, "client_id": "khong-ai-ca"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert (await _refresh(http, token)).status_code == 200


async def test_an_unknown_token_is_answered_200(http):
    answer = await http.post("/auth/revoke", data={"token": "khong-phai-token-nao", "client_id": APP})
    assert answer.status_code == 200


async def test_the_revocation_is_audited(http, smart_app, store):
    token = await _refresh_token(http)
    assert (await http.post("/auth/revoke", data={"token": token, "client_id": APP})).status_code == 200
    assert smart_app.state.audit_trail.flush(10)
    bundle = orjson.loads(run_search(store, "AuditEvent", [("_count", "500")], FHIR, max_count=500))
    events = [
        e["resource"]
        for e in bundle.get("entry", [])
        if any(x.get("description") == "/auth/revoke" for x in e["resource"].get("entity", []))
    ]
    assert len(events) == 1
    (event,) = events
    assert event["outcome"] == "0" and event["outcomeDesc"] == "revoked"
    who = [a["who"]["identifier"]["value"] for a in event["agent"]]
    assert who == [f"client/{APP}", "user/bs.lan"]


async def test_discovery_names_the_revocation_endpoint(http):
    smart = (await http.get("/.well-known/smart-configuration")).json()
    openid = (await http.get("/.well-known/openid-configuration")).json()
    assert smart["revocation_endpoint"] == "http://test/auth/revoke"
    assert openid["revocation_endpoint"] == "http://test/auth/revoke"
