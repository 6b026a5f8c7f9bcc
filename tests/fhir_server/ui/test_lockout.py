"""Password guessing (issue 13): per-account and per-address lockout with backoff on /ui/login and
/auth/authorize, the same answer for unknown usernames, and every attempt audited; SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import orjson
import pytest

from fhir_server.search.run import run_search
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app
from tests.fhir_server.ui.test_login import PASSWORD, SECRET, _login

LIMIT = 3


@pytest.fixture
async def browser(settings, store):
    """The secured view (3 wrong passwords lock for a minute) and two accounts."""
    repo = user_repository(store)
    add_user(repo, "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    add_user(repo, "bs.minh", "BS. Trần Quang Minh", PASSWORD, admin=False)
    app = create_app(
        settings.with_(
            auth_mode="jwt", jwt_secret=SECRET, login_max_failures=LIMIT, login_lockout_seconds=60
        ),
        store=store,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Accept-Language": "vi"}
    ) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    app.state.audit_trail.close()


def signin_events(app, store) -> list[dict]:
    """The sign-in AuditEvents written so far (after the writer drained its queue)."""
    assert app.state.audit_trail.flush(10)
    bundle = orjson.loads(
        run_search(store, "AuditEvent", [("_count", "500")], "http://test/fhir", max_count=500)
    )
    events = [e["resource"] for e in bundle.get("entry", [])]
    return [e for e in events if e["type"]["code"] == "110114"]


async def test_the_right_password_after_the_limit_is_refused_in_vietnamese(browser):
    for _ in range(LIMIT):
        assert (await _login(browser, "bs.lan", "sai-mat-khau-roi")).status_code == 401
    r = await _login(browser, "bs.lan", PASSWORD)
    assert r.status_code == 429
    assert "Đăng nhập sai quá nhiều lần" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 60


async def test_fewer_failures_than_the_limit_still_let_the_user_in_and_start_over(browser):
    for _ in range(LIMIT - 1):
        await _login(browser, "bs.lan", "sai-mat-khau-roi")
    assert (await _login(browser, "bs.lan", PASSWORD)).status_code == 303
    for _ in range(LIMIT - 1):  # the count started over after the success
        await _login(browser, "bs.lan", "sai-mat-khau-roi")
    assert (await _login(browser, "bs.lan", PASSWORD)).status_code == 303


async def test_an_unknown_username_is_answered_exactly_like_a_real_one(browser):
    real = [(await _login(browser, "bs.lan", "sai-mat-khau-roi")).status_code for _ in range(LIMIT + 1)]
    ghost = [(await _login(browser, "bs.khong-co", "sai-mat-khau-roi")).status_code for _ in range(LIMIT + 1)]
    assert real == ghost == [401] * LIMIT + [429]


async def test_a_locked_account_does_not_lock_another_account(browser):
    for _ in range(LIMIT):
        await _login(browser, "bs.lan", "sai-mat-khau-roi")
    assert (await _login(browser, "bs.minh", PASSWORD)).status_code == 303


async def test_guessing_across_many_usernames_locks_the_address(browser):
    for i in range(LIMIT * 4):  # each name stays under its own limit; the address does not
        await _login(browser, f"ten-doan-{i % 4}", "sai-mat-khau-roi")
    assert (await _login(browser, "bs.minh", PASSWORD)).status_code == 429


async def test_every_attempt_is_audited_with_its_outcome(browser, store):
    await _login(browser, "bs.lan", "sai-mat-khau-roi")
    await _login(browser, "bs.lan", PASSWORD)
    events = signin_events(browser.app, store)
    outcomes = sorted((e["outcome"], e.get("outcomeDesc", "")) for e in events)
    assert outcomes == [("0", ""), ("4", "failed")]
    assert all(e["agent"][0]["who"]["identifier"]["value"] == "user/bs.lan" for e in events)
    assert all(e["agent"][0]["network"]["address"] == "127.0.0.1" for e in events)
