"""SMART App Launch for clinicians (issue 13): authorization code + PKCE at /auth/authorize and /auth/token,
over the real app on SQLite and PostgreSQL, driven like a browser plus a SMART app would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from jose import jwt

from fhir_server.search.run import run_search
from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app
from tests.fhir_server.auth.helpers import AUDIENCE, SECRET, bearer
from tests.fhir_server.vn_data import observation, patient

APP = "app-ho-so-benh-an"
CALLBACK = "http://127.0.0.1:8765/callback"
FHIR = "http://test/fhir"
PASSWORD = "Mật-khẩu-đủ-dài-2026"
ADMIN = bearer("system/*.cruds")
APP_SCOPES = "openid fhirUser launch/patient offline_access online_access user/*.rs patient/*.rs"


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair, computed here independently of the server's code."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def smart_app(settings, store):
    """The app with its authorization server, two clinicians, a registered SMART app and a disabled one."""
    users = user_repository(store)
    add_user(users, "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    add_user(users, "bs.nghi", "BS. Lê Văn Nghỉ", PASSWORD, admin=False)
    users.set_disabled("bs.nghi")
    for client_id, enabled in ((APP, True), ("app-da-ngung", False)):
        store.auth.add_client(
            ClientRecord(client_id, "Hồ sơ bệnh án điện tử", "", APP_SCOPES, None, None, enabled)
        )
        authcode_repository(store).set_app(client_id, (CALLBACK,), public=True)
    authcode_repository(store).set_fhir_user("bs.lan", "Practitioner/bs-lan")
    app = create_app(
        settings.with_(auth_mode="smart", jwt_secret=SECRET, jwt_audience=AUDIENCE, authcode_lifetime=60),
        store=store,
    )
    yield app
    if app.state.audit_trail is not None:
        app.state.audit_trail.close()


@pytest.fixture
async def http(smart_app):
    """A cookie-keeping client (the browser and the app in one), no automatic redirects."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smart_app),
        base_url="http://test",
        headers={"Accept-Language": "vi"},
    ) as c:
        for pid, name, cccd in (
            ("an", "NGUYỄN VĂN AN", "079090001234"),
            ("binh", "TRẦN THỊ BÌNH", "079185004321"),
        ):
            r = await c.put(f"/fhir/Patient/{pid}", json=patient(name, cccd, res_id=pid), headers=ADMIN)
            assert r.status_code in (200, 201), r.text
            r = await c.put(
                f"/fhir/Observation/obs-{pid}",
                json=observation(f"Patient/{pid}", res_id=f"obs-{pid}"),
                headers=ADMIN,
            )
            assert r.status_code in (200, 201), r.text
        yield c


def request_params(challenge: str, **over) -> dict:
    """The authorization request a SMART app sends the browser to."""
    params = {
        "response_type": "code",
        "client_id": APP,
        "redirect_uri": CALLBACK,
        "scope": "openid fhirUser offline_access user/*.rs",
        "state": "trang-thai-" + secrets.token_hex(4),
        "aud": FHIR,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(over)
    return {k: v for k, v in params.items() if v is not None}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the consent form"
    return found.group(1)


async def sign_in(
    http: httpx.AsyncClient, params: dict, username: str = "bs.lan", password: str = PASSWORD, **form
) -> httpx.Response:
    """Open the consent page and submit it as the clinician would."""
    page = await http.get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    body = {**params, "csrf_token": csrf_of(page.text), "username": username, "password": password}
    body.setdefault("action", "allow")
    return await http.post("/auth/authorize", data={**body, **form})


def callback_args(response: httpx.Response) -> dict:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(http: httpx.AsyncClient, code: str, verifier: str, **over) -> httpx.Response:
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": APP,
        "code_verifier": verifier,
        **over,
    }
    return await http.post("/auth/token", data=body)


async def login_code(http: httpx.AsyncClient, **over) -> tuple[str, str, dict]:
    """(code, verifier, callback arguments) of a successful sign-in."""
    verifier, challenge = pkce()
    params = request_params(challenge, **over)
    args = callback_args(await sign_in(http, params))
    assert args["state"] == params["state"]
    return args["code"], verifier, args


async def test_clinician_signs_in_and_the_app_reads_with_the_token(http):
    code, verifier, _args = await login_code(http)
    r = await exchange(http, code, verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "openid fhirUser offline_access user/*.rs"
    assert r.headers["cache-control"] == "no-store"
    read = await http.get("/fhir/Patient/an", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200
    assert read.json()["name"][0]["text"] == "NGUYỄN VĂN AN"


async def test_the_id_token_names_the_clinician_and_her_practitioner(http):
    code, verifier, _args = await login_code(http, nonce="so-dung-mot-lan")
    body = (await exchange(http, code, verifier)).json()
    claims = jwt.get_unverified_claims(body["id_token"])
    assert claims["sub"] == "bs.lan" and claims["aud"] == APP and claims["nonce"] == "so-dung-mot-lan"
    assert claims["fhirUser"] == f"{FHIR}/Practitioner/bs-lan"
    assert claims["name"] == "BS. Nguyễn Thị Lan"
    jwks = (await http.get("/auth/jwks")).json()
    jwt.decode(body["id_token"], jwks["keys"][0], audience=APP, options={"verify_at_hash": False})


async def test_state_is_echoed_unchanged(http):
    verifier, challenge = pkce()
    params = request_params(challenge, state="Bệnh viện Chợ Rẫy & khoa Nội")
    assert callback_args(await sign_in(http, params))["state"] == "Bệnh viện Chợ Rẫy & khoa Nội"


async def test_wrong_code_verifier_is_refused(http):
    code, _verifier, _args = await login_code(http)
    r = await exchange(http, code, pkce()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_plain_pkce_method_is_refused_back_to_the_app(http):
    verifier, _challenge = pkce()
    params = request_params(verifier, code_challenge_method="plain")
    args = callback_args(await http.get("/auth/authorize", params=params))
    assert args["error"] == "invalid_request" and args["state"] == params["state"]
    assert "code" not in args


async def test_request_without_pkce_is_refused(http):
    params = request_params("", code_challenge=None, code_challenge_method=None)
    assert callback_args(await http.get("/auth/authorize", params=params))["error"] == "invalid_request"


async def test_replayed_code_is_refused_and_revokes_the_refresh_token(http):
    code, verifier, _args = await login_code(http)
    first = await exchange(http, code, verifier)
    assert first.status_code == 200
    again = await exchange(http, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refresh = await http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": APP,
        },
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_expired_code_is_refused(settings, store, smart_app):
    short = create_app(
        settings.with_(auth_mode="smart", jwt_secret=SECRET, jwt_audience=AUDIENCE, authcode_lifetime=1),
        store=store,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=short), base_url="http://test") as c:
        code, verifier, _args = await login_code(c)
        time.sleep(2.1)
        r = await exchange(c, code, verifier)
    if short.state.audit_trail is not None:
        short.state.audit_trail.close()
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_redirect_uri_not_registered_is_shown_not_followed(http):
    params = request_params(pkce()[1], redirect_uri="https://ke-gian.example/callback")
    r = await http.get("/auth/authorize", params=params)
    assert r.status_code == 400 and "location" not in r.headers
    assert "redirect_uri" in r.text


async def test_token_request_with_another_redirect_uri_is_refused(http):
    code, verifier, _args = await login_code(http)
    r = await exchange(http, code, verifier, redirect_uri="http://127.0.0.1:8765/khac")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_unknown_client_is_shown_not_redirected(http):
    r = await http.get("/auth/authorize", params=request_params(pkce()[1], client_id="app-la"))
    assert r.status_code == 400 and "location" not in r.headers
    assert "Ứng dụng" in r.text or "client" in r.text.lower()


async def test_disabled_client_is_refused(http):
    r = await http.get("/auth/authorize", params=request_params(pkce()[1], client_id="app-da-ngung"))
    assert r.status_code == 400 and "location" not in r.headers


async def test_disabled_client_cannot_redeem_a_code(http):
    code, verifier, _args = await login_code(http)
    r = await exchange(http, code, verifier, client_id="app-da-ngung")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_wrong_audience_is_refused_back_to_the_app(http):
    args = callback_args(
        await http.get("/auth/authorize", params=request_params(pkce()[1], aud="https://khac.vn/fhir"))
    )
    assert args["error"] == "invalid_request"


async def test_wrong_password_shows_the_form_again(http):
    r = await sign_in(http, request_params(pkce()[1]), password="sai-mat-khau-roi")
    assert r.status_code == 401 and "location" not in r.headers
    assert "Sai tên đăng nhập hoặc mật khẩu" in r.text


async def test_disabled_clinician_cannot_sign_in(http):
    r = await sign_in(http, request_params(pkce()[1]), username="bs.nghi")
    assert r.status_code == 401


async def test_clinician_who_denies_sends_access_denied(http):
    params = request_params(pkce()[1])
    args = callback_args(await sign_in(http, params, action="deny"))
    assert args["error"] == "access_denied" and args["state"] == params["state"]


async def test_consent_form_without_the_csrf_cookie_is_refused(http):
    params = request_params(pkce()[1])
    page = await http.get("/auth/authorize", params=params)
    http.cookies.clear()
    r = await http.post(
        "/auth/authorize",
        data={
            **params,
            "csrf_token": csrf_of(page.text),
            "username": "bs.lan",
            "password": PASSWORD,
            "action": "allow",
        },
    )
    assert r.status_code == 403 and "location" not in r.headers


async def test_consent_form_with_a_forged_csrf_token_is_refused(http):
    params = request_params(pkce()[1])
    await http.get("/auth/authorize", params=params)
    r = await http.post(
        "/auth/authorize",
        data={
            **params,
            "csrf_token": "gia-mao",
            "username": "bs.lan",
            "password": PASSWORD,
            "action": "allow",
        },
    )
    assert r.status_code == 403


async def test_refresh_token_rotates_and_reuse_revokes_the_family(http):
    code, verifier, _args = await login_code(http)
    first = (await exchange(http, code, verifier)).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "client_id": APP}
    rotated = await http.post("/auth/token", data={**form, "refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first and "id_token" not in rotated.json()
    stolen = await http.post("/auth/token", data={**form, "refresh_token": first})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    after = await http.post("/auth/token", data={**form, "refresh_token": second})
    assert after.status_code == 400, "reuse of an old refresh token must revoke the newer one too"


async def test_refresh_may_narrow_but_not_widen_the_scopes(http):
    code, verifier, _args = await login_code(http)
    refresh = (await exchange(http, code, verifier)).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "client_id": APP, "refresh_token": refresh}
    wider = await http.post("/auth/token", data={**form, "scope": "user/*.rs user/*.cruds"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def test_scopes_are_narrowed_to_what_a_clinician_may_have(http):
    asked = "openid user/*.rs user/Patient.cruds user/AuditEvent.rs system/*.cruds"
    code, verifier, _args = await login_code(http, scope=asked)
    body = (await exchange(http, code, verifier)).json()
    assert body["scope"] == "openid user/*.rs"
    assert "refresh_token" not in body
    write = await http.post(
        "/fhir/Patient", json=patient(), headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert write.status_code == 403


async def test_patient_scope_token_reads_only_the_chosen_patients_compartment(http):
    verifier, challenge = pkce()
    params = request_params(challenge, scope="launch/patient patient/*.rs")
    args = callback_args(await sign_in(http, params, patient_identifier="079185004321"))
    body = (await exchange(http, args["code"], verifier)).json()
    assert body["patient"] == "binh" and body["scope"] == "launch/patient patient/*.rs"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    found = (await http.get("/fhir/Observation", headers=auth)).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["obs-binh"]
    assert (await http.get("/fhir/Patient/binh", headers=auth)).status_code == 200
    assert (await http.get("/fhir/Patient/an", headers=auth)).status_code == 403


async def test_unknown_patient_identifier_is_asked_again(http):
    params = request_params(pkce()[1], scope="launch/patient patient/*.rs")
    r = await sign_in(http, params, patient_identifier="000000000000")
    assert r.status_code == 400 and "Không có bệnh nhân" in r.text


async def test_discovery_and_capability_statement_name_the_authorize_endpoint(http):
    config = (await http.get("/.well-known/smart-configuration")).json()
    assert config["authorization_endpoint"] == "http://test/auth/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in config["grant_types_supported"]
    assert {"launch-standalone", "client-public", "context-standalone-patient"} <= set(config["capabilities"])
    meta = (await http.get("/fhir/metadata")).json()
    uris = meta["rest"][0]["security"]["extension"][0]["extension"]
    assert {"url": "authorize", "valueUri": "http://test/auth/authorize"} in uris


async def test_authorization_request_may_be_posted_as_a_form(http):
    r = await http.post("/auth/authorize", data=request_params(pkce()[1]))
    assert r.status_code == 200 and 'name="csrf_token"' in r.text


def test_clients_cli_registers_a_public_smart_app(db_url, store, monkeypatch):
    from typer.testing import CliRunner

    from lienthong.cli import app as cli

    monkeypatch.setenv("LIENTHONG_LANG", "en")
    runner = CliRunner()
    base = ["clients", "add", "app-kham-benh", "--scope", APP_SCOPES, "--db", db_url]
    no_uri = runner.invoke(cli, [*base, "--public"])
    assert no_uri.exit_code == 2, "a public client without a redirect URI must be refused"
    plain_http = runner.invoke(cli, [*base, "--public", "--redirect-uri", "http://ung-dung.vn/cb"])
    assert plain_http.exit_code == 2, "http is only for loopback redirect URIs"
    added = runner.invoke(
        cli, [*base, "--public", "--redirect-uri", CALLBACK, "--redirect-uri", "https://ung-dung.vn/cb"]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["clients", "list", "--db", db_url]).output
    assert f"\tpublic\t{CALLBACK} https://ung-dung.vn/cb" in listed
    app = authcode_repository(store).app("app-kham-benh")
    assert app is not None and app.public and app.redirect_uris == (CALLBACK, "https://ung-dung.vn/cb")


def test_users_cli_links_an_account_to_its_practitioner(db_url, store, monkeypatch):
    from typer.testing import CliRunner

    from lienthong.cli import app as cli

    monkeypatch.setenv("LIENTHONG_LANG", "en")
    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    runner = CliRunner()
    ok = runner.invoke(cli, ["users", "fhir-user", "bs.lan", "Practitioner/bs-lan", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    assert authcode_repository(store).fhir_user("bs.lan") == "Practitioner/bs-lan"
    bad = runner.invoke(cli, ["users", "fhir-user", "bs.lan", "Patient/an", "--db", db_url])
    assert bad.exit_code == 2


async def test_confidential_app_redeems_its_code_with_a_signed_assertion(http, store):
    from tests.fhir_server.auth.test_token_endpoint import assertion, rsa_key

    private, public = rsa_key()
    store.auth.add_client(
        ClientRecord("app-bao-mat", "Ứng dụng bảo mật", public, APP_SCOPES, None, None, True)
    )
    authcode_repository(store).set_app("app-bao-mat", (CALLBACK,), public=False)
    code, verifier, _args = await login_code(http, client_id="app-bao-mat")
    unsigned = await exchange(http, code, verifier, client_id="app-bao-mat")
    assert unsigned.status_code == 401, "a confidential app must authenticate, not just name itself"
    code, verifier, _args = await login_code(http, client_id="app-bao-mat")
    signed = assertion("app-bao-mat", private)
    r = await exchange(
        http,
        code,
        verifier,
        client_id="app-bao-mat",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=signed,
    )
    assert r.status_code == 200, r.text
    assert jwt.get_unverified_claims(r.json()["access_token"])["client_id"] == "app-bao-mat"


def test_a_code_raced_by_two_workers_is_spent_once(store):
    from concurrent.futures import ThreadPoolExecutor

    from fhir_server.storage.sql.authcode import CodeGrant, Consumed

    repo = authcode_repository(store)
    now = int(time.time())
    repo.add_code(
        "a" * 64,
        CodeGrant(APP, CALLBACK, "bs.lan", "user/*.rs", None, None, "c" * 43, now + 60, "a" * 64),
        now,
    )
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _i: repo.spend_code("a" * 64)[0], range(8)))
    assert outcomes.count(Consumed.FRESH) == 1 and outcomes.count(Consumed.REPLAYED) == 7


async def test_clinician_picks_among_the_hospital_records_of_one_cccd(http):
    hue = {**patient("NGUYỄN VĂN AN", "079090001234", res_id="an-hue"), "birthDate": "1990-05-15"}
    assert (await http.put("/fhir/Patient/an-hue", json=hue, headers=ADMIN)).status_code in (200, 201)
    verifier, challenge = pkce()
    params = request_params(challenge, scope="launch/patient patient/*.rs")
    first = await sign_in(http, params, patient_identifier="079090001234")
    assert first.status_code == 200 and "location" not in first.headers
    assert "Có nhiều hồ sơ mang mã định danh này" in first.text
    offered = re.findall(r'name="patient_id" value="([^"]+)"', first.text)
    assert sorted(offered) == ["an", "an-hue"]
    form = {**params, "csrf_token": csrf_of(first.text), "username": "bs.lan", "password": PASSWORD}
    forged = await http.post(
        "/auth/authorize",
        data={**form, "action": "allow", "patient_identifier": "079090001234", "patient_id": "binh"},
    )
    assert forged.status_code == 200 and "location" not in forged.headers, (
        "only an offered record may be chosen"
    )
    form["csrf_token"] = csrf_of(forged.text)
    chosen = await http.post(
        "/auth/authorize",
        data={**form, "action": "allow", "patient_identifier": "079090001234", "patient_id": "an-hue"},
    )
    body = (await exchange(http, callback_args(chosen)["code"], verifier)).json()
    assert body["patient"] == "an-hue"


async def test_the_consent_page_locks_an_account_after_repeated_wrong_passwords(settings, store):
    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    store.auth.add_client(ClientRecord(APP, "Hồ sơ bệnh án điện tử", "", APP_SCOPES, None, None, True))
    authcode_repository(store).set_app(APP, (CALLBACK,), public=True)
    app = create_app(
        settings.with_(auth_mode="smart", jwt_secret=SECRET, jwt_audience=AUDIENCE, login_max_failures=2),
        store=store,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Accept-Language": "vi"}
    ) as c:
        params = request_params(pkce()[1])
        assert (await sign_in(c, params, password="sai-mat-khau-roi")).status_code == 401
        assert (await sign_in(c, params, password="sai-mat-khau-roi")).status_code == 401
        locked = await sign_in(c, params)
        assert locked.status_code == 429 and "Đăng nhập sai quá nhiều lần" in locked.text
    app.state.audit_trail.close()


def _lookups(smart_app, store) -> list[dict]:
    assert smart_app.state.audit_trail.flush(10)
    bundle = orjson.loads(run_search(store, "AuditEvent", [("_count", "500")], FHIR, max_count=500))
    events = [e["resource"] for e in bundle.get("entry", [])]
    return [
        e
        for e in events
        if any(x.get("description") == "Patient" and x.get("query") for x in e.get("entity", []))
        and e["agent"][0]["who"].get("identifier", {}).get("value") == "user/bs.lan"
    ]


async def test_the_patient_lookup_on_the_consent_page_is_audited(http, smart_app, store):
    params = request_params(pkce()[1], scope="launch/patient patient/*.rs")
    callback_args(await sign_in(http, params, patient_identifier="079185004321"))
    [event] = _lookups(smart_app, store)
    assert event["outcome"] == "0"
    refs = [x["what"]["reference"] for x in event["entity"] if "what" in x]
    assert refs == ["Patient/binh"]
    query = [x["query"] for x in event["entity"] if "query" in x][0]
    assert base64.b64decode(query).decode() == "identifier=079185004321"


async def test_a_lookup_that_finds_nobody_is_audited_as_failed(http, smart_app, store):
    params = request_params(pkce()[1], scope="launch/patient patient/*.rs")
    await sign_in(http, params, patient_identifier="000000000000")
    [event] = _lookups(smart_app, store)
    assert event["outcome"] == "4" and not [x for x in event["entity"] if "what" in x]
