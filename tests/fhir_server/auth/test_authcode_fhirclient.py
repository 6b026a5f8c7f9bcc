"""SMART's own Python client (`fhirclient`) drives the standalone patient launch against a real uvicorn:
it discovers the endpoints from the CapabilityStatement, builds the PKCE authorization URL, exchanges
the code at the callback and reads the chosen patient. The clinician's part (sign-in + consent form)
is played by httpx, as a browser would."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation

from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import add_user
from lienthong.app import create_app
from tests.fhir_server.auth.helpers import AUDIENCE, SECRET, bearer
from tests.fhir_server.vn_data import observation, patient

APP = "app-theo-doi-duong-huyet"
CALLBACK = "http://127.0.0.1:8765/callback"
PASSWORD = "Mật-khẩu-đủ-dài-2026"


@pytest.fixture
def app(settings, store):
    """The live server's app: authorization server on, a clinician and a public SMART app registered."""
    add_user(user_repository(store), "bs.lan", "BS. Nguyễn Thị Lan", PASSWORD, admin=False)
    store.auth.add_client(
        ClientRecord(APP, "Theo dõi đường huyết", "", "launch/patient patient/*.rs", None, None, True)
    )
    authcode_repository(store).set_app(APP, (CALLBACK,), public=True)
    app = create_app(settings.with_(auth_mode="smart", jwt_secret=SECRET, jwt_audience=AUDIENCE), store=store)
    yield app
    if app.state.audit_trail is not None:
        app.state.audit_trail.close()


def test_fhirclient_completes_a_standalone_patient_launch(live_server):
    admin = bearer("system/*.cruds")
    with httpx.Client(base_url=live_server + "/") as fhir:
        for pid, name, cccd in (
            ("an", "NGUYỄN VĂN AN", "079090001234"),
            ("binh", "TRẦN THỊ BÌNH", "079185004321"),
        ):
            assert fhir.put(f"Patient/{pid}", json=patient(name, cccd, res_id=pid), headers=admin).is_success
            obs = observation(f"Patient/{pid}", res_id=f"obs-{pid}")
            assert fhir.put(f"Observation/obs-{pid}", json=obs, headers=admin).is_success

    smart = smart_client.FHIRClient(
        settings={"app_id": APP, "api_base": live_server, "redirect_uri": CALLBACK, "scope": "patient/*.rs"}
    )
    smart.wants_patient = True
    authorize_url = smart.authorize_url
    root = live_server[: -len("/fhir")]
    assert authorize_url.startswith(f"{root}/auth/authorize?")
    with httpx.Client() as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
        fields = {
            k: v.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'") for k, v in fields.items()
        }
        form = {**fields, "username": "bs.lan", "password": PASSWORD, "patient_identifier": "079090001234"}
        done = browser.post(f"{root}/auth/authorize", data={**form, "action": "allow"})
    assert done.status_code == 303, done.text
    callback = done.headers["location"]
    assert urlsplit(callback).path == "/callback"

    smart.handle_callback(callback)

    assert smart.ready and smart.patient_id == "an"
    assert smart.patient.name[0].text == "NGUYỄN VĂN AN"
    found = list(Observation.where(struct={}).perform_resources_iter(smart.server))
    assert [o.id for o in found] == ["obs-an"]


@pytest.mark.browser
def test_real_chromium_signs_in_on_the_consent_page_and_reaches_the_app(live_server):
    """CSP form-action, the SameSite CSRF cookie and the cross-origin redirect as a browser applies them."""
    from tests.fhir_server.ui.test_clinician_browser import chromium

    admin = bearer("system/*.cruds")
    with httpx.Client(base_url=live_server + "/") as fhir:
        assert fhir.put("Patient/an", json=patient(res_id="an"), headers=admin).is_success
    smart = smart_client.FHIRClient(
        settings={"app_id": APP, "api_base": live_server, "redirect_uri": CALLBACK, "scope": "patient/*.rs"}
    )
    smart.wants_patient = True
    arrived: list[str] = []
    with chromium() as browser:
        page = browser.new_page(locale="vi-VN")

        def app_callback(route) -> None:
            arrived.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>ứng dụng</p>")

        page.route("http://127.0.0.1:8765/**", app_callback)
        page.goto(smart.authorize_url)
        assert page.locator("h1").inner_text() == "Đăng nhập và cấp quyền cho ứng dụng"
        page.fill("#username", "bs.lan")
        page.fill("#password", PASSWORD)
        page.fill("#patient_identifier", "079090001234")
        page.click("button[value=allow]")
        page.wait_for_url("http://127.0.0.1:8765/**")
    assert len(arrived) == 1
    smart.handle_callback(arrived[0])
    assert smart.patient_id == "an" and smart.patient.name[0].text == "NGUYỄN VĂN AN"
