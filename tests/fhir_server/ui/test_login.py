"""Clinician login for /ui (issue 13), on SQLite and PostgreSQL over the real app: login page, wrong
password, CSRF, logout, expiry, disabled accounts, security headers, the admins' "who viewed" page,
and the `lienthong users` commands."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from typer.testing import CliRunner

from fhir_server.i18n import _, use_lang
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app
from lienthong.cli import app as cli_app
from tests.fhir_server.vn_data import patient

SECRET = "khoa-bi-mat-cua-benh-vien-cho-ray-dai-32-byte"
PASSWORD = "Mật-khẩu-đủ-dài-2026"


def _app(settings, store, **changes):
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET, **changes), store=store)
    return app


@pytest.fixture
def secured_app(settings, store):
    """The app with auth on, and two accounts: a clinician and an administrator."""
    repo = user_repository(store)
    add_user(repo, "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    add_user(repo, "qt.hung", "Trần Văn Hùng", PASSWORD, admin=True)
    app = _app(settings, store)
    yield app
    app.state.audit_trail.close()


@pytest.fixture
async def browser(secured_app):
    """A cookie-keeping client like a browser (no automatic redirects)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=secured_app),
        base_url="http://test",
        headers={"Accept-Language": "vi"},
    ) as c:
        yield c


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


async def _login(c: httpx.AsyncClient, username: str = "bs.lan", password: str = PASSWORD) -> httpx.Response:
    page = await c.get("/ui/login")
    return await c.post(
        "/ui/login",
        data={"csrf_token": _csrf(page.text), "username": username, "password": password, "next": "/ui"},
    )


async def test_view_without_session_redirects_to_login(browser):
    r = await browser.get("/ui", params={"q": "Nguyễn"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/login?next=%2Fui%3Fq%3D")


async def test_login_page_is_vietnamese_with_csrf_token_and_security_headers(browser):
    r = await browser.get("/ui/login")
    assert r.status_code == 200
    assert "Đăng nhập" in r.text
    assert _csrf(r.text)
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_right_password_opens_the_view(browser):
    r = await _login(browser)
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert (await browser.get("/ui")).status_code == 200


async def test_wrong_password_is_refused(browser):
    r = await _login(browser, password="sai-mat-khau-roi")
    assert r.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in r.text
    assert (await browser.get("/ui")).status_code == 303


async def test_unknown_user_is_refused_like_a_wrong_password(browser):
    r = await _login(browser, username="khong.ton.tai")
    assert r.status_code == 401


async def test_login_without_csrf_token_is_403(browser):
    await browser.get("/ui/login")
    r = await browser.post("/ui/login", data={"username": "bs.lan", "password": PASSWORD})
    assert r.status_code == 403
    assert (await browser.get("/ui")).status_code == 303


async def test_login_with_a_foreign_csrf_token_is_403(browser):
    await browser.get("/ui/login")
    r = await browser.post(
        "/ui/login", data={"csrf_token": "gia-mao", "username": "bs.lan", "password": PASSWORD}
    )
    assert r.status_code == 403


async def test_logout_ends_the_session(browser):
    await _login(browser)
    page = await browser.get("/ui/logout")
    r = await browser.post("/ui/logout", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert (await browser.get("/ui")).status_code == 303


async def test_logout_without_csrf_token_is_403_and_keeps_the_session(browser):
    await _login(browser)
    assert (await browser.post("/ui/logout", data={})).status_code == 403
    assert (await browser.get("/ui")).status_code == 200


async def test_session_expires(settings, store):
    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    app = _app(settings, store, session_max_age=1)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            await _login(c)
            assert (await c.get("/ui")).status_code == 200
            time.sleep(2.1)  # past Max-Age: the signed cookie's timestamp is too old
            assert (await c.get("/ui")).status_code == 303
    finally:
        app.state.audit_trail.close()


async def test_disabled_account_cannot_sign_in(browser, store):
    user_repository(store).set_disabled("bs.lan")
    assert (await _login(browser)).status_code == 401


async def test_view_stays_open_when_auth_is_off(client):
    async with httpx.AsyncClient(transport=client._transport, base_url="http://test") as c:
        r = await c.get("/ui")
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"


async def test_admin_sees_who_viewed_a_record(browser, secured_app, store):
    created = store.run(lambda tx: tx.put(patient("LÊ THỊ MAI", "079190000777"), "le-thi-mai", "PUT"))
    assert created[1]
    await _login(browser, "bs.lan")
    assert (await browser.get("/ui/patient/le-thi-mai")).status_code == 200
    assert secured_app.state.audit_trail.flush()
    browser.cookies.clear()
    await _login(browser, "qt.hung")
    r = await browser.get("/ui/patient/le-thi-mai/audit")
    assert r.status_code == 200
    assert "Ai đã xem hồ sơ này" in r.text
    assert "user/bs.lan" in r.text


async def test_clinician_cannot_see_who_viewed_a_record(browser):
    await _login(browser, "bs.lan")
    r = await browser.get("/ui/patient/le-thi-mai/audit")
    assert r.status_code == 403


def test_users_commands_add_list_and_disable(db_url):
    runner = CliRunner()
    added = runner.invoke(
        cli_app,
        [
            "--lang",
            "vi",
            "users",
            "add",
            "dd.hoa",
            "--name",
            "ĐD. Phạm Thị Hoa",
            "--password-stdin",
            "--db",
            db_url,
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "dd.hoa" in added.output
    listed = runner.invoke(cli_app, ["users", "list", "--db", db_url])
    assert "dd.hoa\tĐD. Phạm Thị Hoa\tclinician\t" in listed.output
    disabled = runner.invoke(cli_app, ["users", "disable", "dd.hoa", "--db", db_url])
    assert disabled.exit_code == 0
    again = runner.invoke(cli_app, ["--lang", "vi", "users", "list", "--db", db_url])
    with use_lang("vi"):
        shown = _("disabled")  # the catalog's word, whichever Vietnamese wording it settles on
    assert shown != "disabled"
    assert again.output.startswith("dd.hoa") and again.output.rstrip().endswith(shown)


def test_users_add_refuses_a_short_password(db_url):
    r = CliRunner().invoke(
        cli_app, ["users", "add", "bs.ngan", "--password-stdin", "--db", db_url], input="ngan\n"
    )
    assert r.exit_code == 2
