"""The hub with access control: the federated hub verifies callers' tokens like a node does, and reaches
nodes with SMART Backend Services (a signed private_key_jwt assertion traded for an access token at the
node's /auth/token), against a real node served by uvicorn on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from jose import jwt

from fhir_server.hub.app import create_hub_app
from fhir_server.hub.auth import SmartBackend, TokenError
from fhir_server.hub.config import parse_config
from fhir_server.settings import Settings
from fhir_server.storage.sql.auth import ClientRecord
from lienthong.app import create_app
from tests.fhir_server.auth.test_token_endpoint import rsa_key
from tests.fhir_server.vn_data import CCCD, patient
from tests.processes import free_port

HUB_CLIENT = "hub-so-y-te-tphcm"
HUB_SECRET = "khoa-bi-mat-cua-trung-tam-dieu-phoi-so-y-te-32b"
KEY, PUBLIC = rsa_key()
STRANGER_KEY, _ = rsa_key()


def _serve(app) -> tuple[str, object]:
    """Serve an ASGI app with uvicorn on a free loopback port (in a thread); (root URL, server)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


@pytest.fixture
def node(settings, store) -> Iterator[str]:
    """A hospital node with SMART Backend Services on, the hub registered as a client; yields its root URL."""
    store.auth.add_client(
        ClientRecord(
            HUB_CLIENT,
            "Trung tâm điều phối Sở Y tế TP.HCM",
            PUBLIC,
            "system/*.rs system/*.cruds",
            None,
            None,
            True,
        )
    )
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    app = create_app(settings.with_(auth_mode="smart", jwt_audience=f"{root}/fhir"), store=store)
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "node did not start"
        time.sleep(0.02)
    yield root
    server.should_exit = True


def _backend(root: str, key: str = KEY, scope: str = "system/*.rs") -> dict:
    return {
        "type": "smart-backend",
        "token_url": f"{root}/auth/token",
        "client_id": HUB_CLIENT,
        "key": key,
        "scope": scope,
    }


def _caller(scope: str = "system/*.rs") -> dict:
    token = jwt.encode(
        {"sub": "bac-si-tuyen-tinh", "scope": scope, "exp": int(time.time()) + 300},
        HUB_SECRET,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def hub(node) -> Iterator[str]:
    """A federated hub with auth on over the node, reaching it with Backend Services; yields its FHIR base."""
    config = parse_config(
        {
            "mode": "federated",
            "nodes": [{"name": "bv-cho-ray", "base_url": f"{node}/fhir", "auth": _backend(node)}],
        }
    )
    app = create_hub_app(config, Settings(auth_mode="jwt", jwt_secret=HUB_SECRET))
    root, server = _serve(app)
    yield f"{root}/fhir"
    server.should_exit = True


async def test_backend_services_token_is_fetched_once_and_reused(node):
    source = SmartBackend(f"{node}/auth/token", HUB_CLIENT, KEY)
    first = await source.token()
    assert await source.token() == first
    assert source.fetched == 1
    claims = jwt.get_unverified_claims(first)
    assert claims["sub"] == HUB_CLIENT and claims["scope"] == "system/*.rs"


async def test_backend_services_token_opens_the_node(node):
    source = SmartBackend(f"{node}/auth/token", HUB_CLIENT, KEY, scope="system/*.cruds")
    headers = {"Authorization": f"Bearer {await source.token()}", "Content-Type": "application/fhir+json"}
    async with httpx.AsyncClient() as http:
        r = await http.put(f"{node}/fhir/Patient/an", json=patient(res_id="an"), headers=headers)
        assert r.status_code == 201, r.text
        assert (await http.get(f"{node}/fhir/Patient/an")).status_code == 401


async def test_assertion_signed_with_an_unregistered_key_gets_no_token(node):
    source = SmartBackend(f"{node}/auth/token", HUB_CLIENT, STRANGER_KEY)
    with pytest.raises(TokenError, match="401"):
        await source.token()


async def test_expired_cached_token_is_replaced(node):
    source = SmartBackend(f"{node}/auth/token", HUB_CLIENT, KEY)
    first = await source.token()
    source._cached = (first, time.time() + 5)  # within the refresh margin
    assert await source.token() != first and source.fetched == 2


async def test_hub_refuses_a_caller_without_token(hub):
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{hub}/Patient", params={"identifier": f"{CCCD}|079090001234"})
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"


async def test_hub_refuses_a_token_signed_with_another_key(hub):
    forged = jwt.encode({"sub": "x", "scope": "system/*.rs", "exp": int(time.time()) + 300}, "khac" * 10)
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{hub}/Patient?identifier=1", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_hub_refuses_a_token_that_may_not_read_patients(hub):
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{hub}/Patient?identifier=1", headers=_caller("system/Observation.rs"))
    assert r.status_code == 403


async def test_hub_metadata_stays_public(hub):
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{hub}/metadata")).status_code == 200


async def test_hub_answers_a_verified_caller_from_the_node_reached_with_backend_services(hub, node):
    writer = SmartBackend(f"{node}/auth/token", HUB_CLIENT, KEY, scope="system/*.cruds")
    async with httpx.AsyncClient() as http:
        r = await http.put(
            f"{node}/fhir/Patient/an",
            json=patient(res_id="an"),
            headers={
                "Authorization": f"Bearer {await writer.token()}",
                "Content-Type": "application/fhir+json",
            },
        )
        assert r.status_code == 201, r.text
        r = await http.get(f"{hub}/Patient", params={"identifier": f"{CCCD}|079090001234"}, headers=_caller())
    assert r.status_code == 200, r.text
    found = [e["resource"] for e in r.json().get("entry", []) if e["resource"]["resourceType"] == "Patient"]
    assert [p["name"][0]["text"] for p in found] == ["NGUYỄN VĂN AN"]


async def test_node_refusing_the_hub_key_is_named_in_the_answer(node):
    config = parse_config(
        {
            "mode": "federated",
            "nodes": [
                {"name": "bv-cho-ray", "base_url": f"{node}/fhir", "auth": _backend(node, key=STRANGER_KEY)}
            ],
        }
    )
    root, server = _serve(create_hub_app(config, Settings(auth_mode="jwt", jwt_secret=HUB_SECRET)))
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{root}/fhir/Patient", params={"identifier": "1"}, headers=_caller())
    finally:
        server.should_exit = True
    outcome = [
        e["resource"]
        for e in r.json().get("entry", [])
        if e["resource"]["resourceType"] == "OperationOutcome"
    ]
    assert outcome and "bv-cho-ray" in str(outcome[0])


def test_smart_backend_config_needs_its_keys():
    with pytest.raises(ValueError, match="key"):
        parse_config(
            {
                "nodes": [
                    {
                        "name": "bv-a",
                        "base_url": "http://127.0.0.1:1/fhir",
                        "auth": {
                            "type": "smart-backend",
                            "token_url": "http://x/auth/token",
                            "client_id": "hub",
                        },
                    }
                ]
            }
        )
