"""The /ui login through an external OpenID Connect provider (issue 13). The provider is REAL: a second
Lienthong instance on another loopback port, with its own accounts, serving discovery, the
authorization code flow with PKCE and signed id_tokens. Both servers run under uvicorn; the browser
is an httpx client that follows the redirects by hand."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository
from fhir_server.storage.sql.store import open_store
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app

PASSWORD = "Mật-khẩu-đủ-dài-2026"
SECRET = "khoa-bi-mat-cua-benh-vien-cho-ray-dai-32-byte"
UI_CLIENT = "lienthong-ui-cho-ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server


@pytest.fixture
def two_servers(settings, store, tmp_path) -> Iterator[tuple[str, str]]:
    """(provider root, hospital root): the provider knows bs.lan and bs.lam; the hospital knows only bs.lan."""
    idp_port, rp_port = _free_port(), _free_port()
    idp_store = open_store(f"sqlite:///{tmp_path / 'idp.db'}")
    idp_users = user_repository(idp_store)
    add_user(idp_users, "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    add_user(idp_users, "bs.lam", "BS. Phạm Văn Lâm", PASSWORD, admin=False)
    idp_store.auth.add_client(
        ClientRecord(UI_CLIENT, "Lienthong Chợ Rẫy", "", "openid profile", None, None, True)
    )
    authcode_repository(idp_store).set_app(
        UI_CLIENT, (f"http://127.0.0.1:{rp_port}/ui/login/oidc/callback",), True
    )
    idp_app = create_app(
        settings.with_(database_url=f"sqlite:///{tmp_path / 'idp.db'}", auth_mode="smart"), idp_store
    )

    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", "mat-khau-cuc-bo-khac-2026", admin=True)
    rp_app = create_app(
        settings.with_(
            auth_mode="jwt",
            jwt_secret=SECRET,
            oidc_issuer=f"http://127.0.0.1:{idp_port}",
            oidc_client_id=UI_CLIENT,
        ),
        store=store,
    )
    servers = [_serve(idp_app, idp_port), _serve(rp_app, rp_port)]
    yield f"http://127.0.0.1:{idp_port}", f"http://127.0.0.1:{rp_port}"
    for server in servers:
        server.should_exit = True
    for app in (idp_app, rp_app):
        if app.state.audit_trail is not None:
            app.state.audit_trail.close()


def _sign_in_at_provider(browser: httpx.Client, rp: str, username: str) -> httpx.Response:
    """Start at the hospital's login, sign in at the provider, come back; the last response."""
    start = browser.get(f"{rp}/ui/login/oidc", params={"next": "/ui"})
    assert start.status_code == 303, start.text
    page = browser.get(start.headers["location"])
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    consent = browser.post(
        str(page.url.copy_with(query=None)),
        data={**fields, "username": username, "password": PASSWORD, "action": "allow"},
    )
    assert consent.status_code == 303, consent.text
    return browser.get(consent.headers["location"])


def test_login_page_offers_the_organisation_sign_in(two_servers):
    _idp, rp = two_servers
    page = httpx.get(f"{rp}/ui/login", headers={"Accept-Language": "vi"})
    assert 'href="/ui/login/oidc?next=' in page.text
    assert "Đăng nhập bằng tài khoản của tổ chức" in page.text


def test_clinician_signs_in_to_the_view_through_the_provider(two_servers):
    _idp, rp = two_servers
    with httpx.Client(headers={"Accept-Language": "vi"}) as browser:
        back = _sign_in_at_provider(browser, rp, "bs.lan")
        assert back.status_code == 200, back.text
        assert '<meta http-equiv="refresh" content="0;url=/ui">' in back.text
        assert "Bạn đã đăng nhập" in back.text
        view = browser.get(f"{rp}/ui")
        assert view.status_code == 200 and "/ui/login" not in str(view.url)
        # The local account gives the role: bs.lan is an administrator here, so she sees audit trails.
        audit = browser.get(f"{rp}/ui/patient/an/audit")
        assert audit.status_code == 200


def test_provider_user_without_a_local_account_is_refused(two_servers):
    _idp, rp = two_servers
    with httpx.Client() as browser:
        back = _sign_in_at_provider(browser, rp, "bs.lam")
        assert back.status_code == 303 and back.headers["location"] == "/ui/login?error=oidc"
        assert browser.get(f"{rp}/ui", follow_redirects=False).status_code == 303


def test_callback_with_a_forged_state_is_refused(two_servers):
    _idp, rp = two_servers
    with httpx.Client() as browser:
        start = browser.get(f"{rp}/ui/login/oidc")
        target = urlsplit(start.headers["location"])
        assert target.path == "/auth/authorize"
        back = browser.get(
            f"{rp}/ui/login/oidc/callback", params={"code": "ma-gia", "state": "trang-thai-gia"}
        )
        assert back.headers["location"] == "/ui/login?error=oidc"
