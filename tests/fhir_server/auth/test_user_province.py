"""Clinician/department accounts bound to a province (issues 13/14): stored in the account table (added to
older databases by the add-only migration), set from the CLI, applied to the /ui/reports session and
carried as a `province` claim in tokens of the authorization-code flow; on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from jose import jwt
from sqlalchemy import inspect
from typer.testing import CliRunner

from fhir_server.reports.hook import attach_reports
from fhir_server.storage.sql.migrate import create_schema
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app
from lienthong.cli import app as cli_app
from tests.fhir_server.auth.test_authcode import (  # noqa: F401  (fixtures)
    callback_args,
    exchange,
    http,
    pkce,
    request_params,
    sign_in,
    smart_app,
)
from tests.fhir_server.reports.visits import BINH_DUONG, HA_NOI, visit_bundle
from tests.fhir_server.ui.test_login import PASSWORD, SECRET, _login

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]


def test_an_older_account_table_gains_the_province_column(store):
    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE app_user DROP COLUMN province")
    create_schema(store.engine)
    assert "province" in {c["name"] for c in inspect(store.engine).get_columns("app_user")}
    row = user_repository(store).get("bs.lan")
    assert row is not None and row.province is None and row.display_name == "BS. Nguyễn Thị Lan"


def test_users_add_with_province_and_set_province(db_url):
    runner = CliRunner()
    added = runner.invoke(
        cli_app,
        ["users", "add", "cv.mai", "--name", "CV. Đỗ Thị Mai", "--province", "79", "--password-stdin"]
        + ["--db", db_url],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert (
        "cv.mai\tCV. Đỗ Thị Mai\tclinician\t79\t"
        in runner.invoke(cli_app, ["users", "list", "--db", db_url]).output
    )
    moved = runner.invoke(cli_app, ["users", "set-province", "cv.mai", "1", "--db", db_url])
    assert moved.exit_code == 0, moved.output
    assert "\t01\t" in runner.invoke(cli_app, ["users", "list", "--db", db_url]).output
    lifted = runner.invoke(cli_app, ["users", "set-province", "cv.mai", "--all", "--db", db_url])
    assert lifted.exit_code == 0
    assert "\t*\t" in runner.invoke(cli_app, ["users", "list", "--db", db_url]).output


def test_users_refuse_a_province_that_is_not_a_code(db_url):
    runner = CliRunner()
    r = runner.invoke(
        cli_app,
        ["--lang", "vi", "users", "add", "cv.mai", "--province", "Hồ Chí Minh", "--password-stdin"]
        + ["--db", db_url],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 2
    assert "mã tỉnh" in r.output
    assert runner.invoke(cli_app, ["users", "set-province", "khong-co", "79", "--db", db_url]).exit_code == 1


@pytest.fixture
async def browser(settings, store):
    """The secured view with report facts, a Hồ Chí Minh department user, a national one, and visits of
    two provinces (loaded through the open app first)."""
    attach_reports(store)
    repo = user_repository(store)
    add_user(repo, "cv.hcm", "CV. Sở Y tế TP.HCM", PASSWORD, admin=False, province="79")
    add_user(repo, "cv.bo", "CV. Bộ Y tế", PASSWORD, admin=False)
    loader = create_app(settings, store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=loader), base_url="http://test/fhir") as c:
        bundles = [visit_bundle(i, name=NAMES[i], home=BINH_DUONG) for i in range(6)]
        bundles += [visit_bundle(10 + i, name=NAMES[i], home=HA_NOI) for i in range(6)]
        for b in bundles:
            assert (await c.post("", json=b)).status_code == 200
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET), store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Accept-Language": "vi"}
    ) as c:
        yield c
    app.state.audit_trail.close()


async def test_a_province_bound_user_sees_only_her_province_on_the_reports_page(browser):
    assert (await _login(browser, "cv.hcm")).status_code == 303
    r = await browser.get("/ui/reports")
    assert r.status_code == 200, r.text
    assert "79 · Hồ Chí Minh" in r.text
    assert "01 · Hà Nội" not in r.text


async def test_a_province_bound_user_asking_for_another_province_is_refused(browser):
    await _login(browser, "cv.hcm")
    assert (await browser.get("/ui/reports", params={"province": "01"})).status_code == 403


async def test_an_unbound_user_sees_every_province(browser):
    await _login(browser, "cv.bo")
    html = (await browser.get("/ui/reports")).text
    assert "79 · Hồ Chí Minh" in html and "01 · Hà Nội" in html


async def test_tokens_of_a_province_bound_user_carry_the_province_claim(http, store):  # noqa: F811
    user_repository(store).set_province("bs.lan", "79")
    verifier, challenge = pkce()
    args = callback_args(await sign_in(http, request_params(challenge)))
    body = (await exchange(http, args["code"], verifier)).json()
    assert jwt.get_unverified_claims(body["access_token"])["province"] == "79"
    refreshed = await http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "app-ho-so-benh-an",
        },
    )
    assert jwt.get_unverified_claims(refreshed.json()["access_token"])["province"] == "79"


async def test_tokens_of_an_unbound_user_carry_no_province(http):  # noqa: F811
    verifier, challenge = pkce()
    args = callback_args(await sign_in(http, request_params(challenge)))
    body = (await exchange(http, args["code"], verifier)).json()
    assert "province" not in jwt.get_unverified_claims(body["access_token"])
