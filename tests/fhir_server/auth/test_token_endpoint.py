"""SMART Backend Services: a registered hospital client trades a signed assertion for an access token."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import orjson
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt

from fhir_server.storage.sql.auth import ClientRecord
from lienthong.app import create_app
from tests.fhir_server.auth.helpers import AUDIENCE
from tests.fhir_server.vn_data import patient

TOKEN_URL = "http://test/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def rsa_key() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pems(key)


def ec_key() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh P-384 key."""
    return _pems(ec.generate_private_key(ec.SECP384R1()))


def _pems(key) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def as_jwks(public_pem: str, alg: str) -> str:
    """A JWKS document holding one public key."""
    key = {
        k: (v.decode() if isinstance(v, bytes) else v)
        for k, v in jwk.construct(public_pem, alg).to_dict().items()
    }
    return orjson.dumps({"keys": [{**key, "kid": "k1", "alg": alg}]}).decode()


def assertion(client_id: str, private_pem: str, alg: str = "RS384", **over) -> str:
    """A client assertion as a hospital HIS signs it."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
        **over,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private_pem, algorithm=alg)


def form(signed: str, scope: str | None = "system/*.rs") -> dict:
    """The token request body."""
    body = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if scope:
        body["scope"] = scope
    return body


CHO_RAY = "his-cho-ray"
HUE = "his-trung-uong-hue"


@pytest.fixture
def keys():
    """Private keys of the two registered hospitals (RSA/PEM and EC/JWKS)."""
    return {CHO_RAY: rsa_key(), HUE: ec_key()}


@pytest.fixture
def smart_app(settings, store, keys):
    """The app with its own token endpoint, two registered clients and a disabled one."""
    store.auth.add_client(
        ClientRecord(
            CHO_RAY,
            "Bệnh viện Chợ Rẫy",
            keys[CHO_RAY][1],
            "system/*.rs system/Patient.cu",
            "79001",
            None,
            True,
        )
    )
    store.auth.add_client(
        ClientRecord(
            HUE,
            "Bệnh viện Trung ương Huế",
            as_jwks(keys[HUE][1], "ES384"),
            "system/*.rs",
            "46001",
            None,
            True,
        )
    )
    store.auth.add_client(
        ClientRecord("his-da-ngung", "Đã ngừng", keys[CHO_RAY][1], "system/*.rs", None, None, False)
    )
    return create_app(settings.with_(auth_mode="smart", jwt_audience=AUDIENCE), store=store)


@pytest_asyncio.fixture
async def http(smart_app):
    """httpx over the app, rooted at the server (not the FHIR base)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=smart_app), base_url="http://test") as c:
        yield c


async def test_rs384_pem_client_gets_a_token_that_reads(http, keys):
    r = await http.post("/auth/token", data=form(assertion(CHO_RAY, keys[CHO_RAY][0])))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300 and body["scope"] == "system/*.rs"
    read = await http.get(
        "/fhir/Patient?name=AN", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert read.status_code == 200


async def test_es384_jwks_client_gets_a_token(http, keys):
    r = await http.post("/auth/token", data=form(assertion(HUE, keys[HUE][0], "ES384")))
    assert r.status_code == 200, r.text


async def test_issued_token_carries_the_client_facility(http, keys):
    r = await http.post("/auth/token", data=form(assertion(CHO_RAY, keys[CHO_RAY][0]), "system/Patient.cu"))
    token = r.json()["access_token"]
    assert jwt.get_unverified_claims(token)["facility"] == "79001"
    other = {**patient(), "meta": {"source": "urn:vn:cskcb:01001"}}
    w = await http.post("/fhir/Patient", json=other, headers={"Authorization": f"Bearer {token}"})
    assert w.status_code == 403


async def test_replayed_assertion_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0])
    assert (await http.post("/auth/token", data=form(signed))).status_code == 200
    again = await http.post("/auth/token", data=form(signed))
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"


async def test_disabled_client_is_refused(http, keys):
    r = await http.post("/auth/token", data=form(assertion("his-da-ngung", keys[CHO_RAY][0])))
    assert r.status_code == 401


async def test_unknown_client_is_refused(http, keys):
    r = await http.post("/auth/token", data=form(assertion("his-la", keys[CHO_RAY][0])))
    assert r.status_code == 401


async def test_assertion_for_another_token_endpoint_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0], aud="https://may-chu-khac.vn/auth/token")
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_assertion_living_longer_than_five_minutes_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0], exp=int(time.time()) + 3600)
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_expired_assertion_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0], exp=int(time.time()) - 60)
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_assertion_without_jti_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0], jti=None)
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_assertion_whose_sub_is_not_the_client_is_refused(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0], sub="his-khac")
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_assertion_signed_with_another_key_is_refused(http, keys):
    signed = assertion(CHO_RAY, rsa_key()[0])
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_hmac_signed_assertion_is_refused(http):
    signed = jwt.encode(
        {"iss": CHO_RAY, "sub": CHO_RAY, "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "x"},
        "bi-mat",
        algorithm="HS256",
    )
    assert (await http.post("/auth/token", data=form(signed))).status_code == 401


async def test_other_grant_types_are_refused(http, keys):
    body = {**form(assertion(CHO_RAY, keys[CHO_RAY][0])), "grant_type": "password"}
    r = await http.post("/auth/token", data=body)
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


async def test_scopes_not_registered_are_not_granted(http, keys):
    r = await http.post("/auth/token", data=form(assertion(CHO_RAY, keys[CHO_RAY][0]), "system/*.cruds"))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


async def test_granted_scopes_are_the_registered_ones_asked_for(http, keys):
    signed = assertion(CHO_RAY, keys[CHO_RAY][0])
    r = await http.post("/auth/token", data=form(signed, "system/Patient.cu system/*.cruds"))
    assert r.json()["scope"] == "system/Patient.cu"


async def test_smart_configuration_is_public_and_names_the_token_endpoint(http):
    r = await http.get("/fhir/.well-known/smart-configuration")
    assert r.status_code == 200
    assert r.json()["token_endpoint"] == TOKEN_URL
    assert "private_key_jwt" in r.json()["token_endpoint_auth_methods_supported"]


async def test_capability_statement_declares_smart_security(http):
    security = (await http.get("/fhir/metadata")).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert security["extension"][0]["extension"][0]["valueUri"] == TOKEN_URL


async def test_signing_key_is_stored_and_shared_by_every_app_on_the_database(
    settings, store, smart_app, http, keys
):
    r = await http.post("/auth/token", data=form(assertion(CHO_RAY, keys[CHO_RAY][0])))
    second = create_app(settings.with_(auth_mode="smart", jwt_audience=AUDIENCE), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://test") as other:
        read = await other.get(
            "/fhir/Patient", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
    assert read.status_code == 200


def _serve(app):
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


async def test_one_assertion_raced_against_two_servers_wins_once(settings, store, keys, smart_app):
    second = create_app(settings.with_(auth_mode="smart", jwt_audience=AUDIENCE), store=store)
    servers = [_serve(smart_app), _serve(second)]
    try:
        # Both servers must see the same token URL for the aud check: sign for each server's own root.
        signed = {
            url: assertion(CHO_RAY, keys[CHO_RAY][0], aud=f"{url}/auth/token", jti="mot-lan-duy-nhat")
            for _, _, url in servers
        }
        async with httpx.AsyncClient() as client:
            calls = [
                client.post(f"{url}/auth/token", data=form(signed[url]))
                for _, _, url in servers
                for _ in range(6)
            ]
            answers = await asyncio.gather(*calls)
    finally:
        for server, thread, _ in servers:
            server.should_exit = True
            thread.join(timeout=10)
    assert sorted(a.status_code for a in answers) == [200] + [401] * 11


def test_clients_cli_registers_lists_and_disables_a_client(db_url, tmp_path, keys, monkeypatch):
    from typer.testing import CliRunner

    from lienthong.cli import app as cli

    monkeypatch.setenv("LIENTHONG_LANG", "en")
    key_file = tmp_path / "cho-ray.pem"
    key_file.write_text(keys[CHO_RAY][1], encoding="utf-8")
    runner = CliRunner()
    add = ["clients", "add", CHO_RAY, "--key", str(key_file), "--scope", "system/*.rs", "--facility", "79001"]
    added = runner.invoke(cli, [*add, "--name", "Bệnh viện Chợ Rẫy", "--db", db_url])
    assert added.exit_code == 0, added.output
    assert runner.invoke(cli, [*add, "--db", db_url]).exit_code == 1  # the id is taken
    listed = runner.invoke(cli, ["clients", "list", "--db", db_url])
    assert f"{CHO_RAY}\tenabled\t79001" in listed.output
    assert runner.invoke(cli, ["clients", "disable", CHO_RAY, "--db", db_url]).exit_code == 0
    assert f"{CHO_RAY}\tdisabled" in runner.invoke(cli, ["clients", "list", "--db", db_url]).output


def test_clients_cli_refuses_a_file_that_is_not_a_public_key(db_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lienthong.cli import app as cli

    bad = tmp_path / "khong-phai-khoa.txt"
    bad.write_text("đây không phải khóa", encoding="utf-8")
    r = CliRunner().invoke(
        cli, ["clients", "add", "x", "--key", str(bad), "--scope", "system/*.rs", "--db", db_url]
    )
    assert r.exit_code == 2


def test_workers_starting_together_all_sign_with_one_key(store):
    from concurrent.futures import ThreadPoolExecutor

    from fhir_server.auth.clients import generate_signing_key

    with ThreadPoolExecutor(max_workers=6) as pool:
        keys = list(pool.map(lambda _: store.auth.signing_key(generate_signing_key), range(6)))
    assert len({kid for kid, _, _ in keys}) == 1
