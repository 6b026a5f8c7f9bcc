"""The direct route (api.fastpath) answers read, vread and type search exactly as the FastAPI routes do:
same status, headers and bytes, errors as OperationOutcome in the caller's language, 304/404/410,
XML on request, auth refusals and the audit trail. Each request is sent to two apps over the same
database, one with the direct route and one without, and an outer recorder checks which of them
really answered it directly (FastAPI's router leaves its endpoint in the scope; the direct route
does not). SQLite and PostgreSQL.
"""

from __future__ import annotations

import time

import httpx
import pytest
from jose import jwt

from lienthong.app import create_app
from tests.fhir_server.vn_data import CCCD, observation, patient

SECRET = "khoa-bi-mat-cua-so-y-te-tinh-dai-du-32-byte!"
# Headers that differ between any two responses of the same server.
_VOLATILE = {"date", "server"}


class _Recorder:
    """Outer ASGI layer: remembers whether FastAPI's router handled the last request."""

    def __init__(self, app) -> None:
        self.app = app
        self.routed: bool | None = None

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.routed = "endpoint" in scope


def _client(app, headers: dict | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.79.0.15", 50123)),
        base_url="http://test/fhir",
        headers={"Content-Type": "application/fhir+json", **(headers or {})},
    )


class _Pair:
    """The same request to the app with the direct route and to the one without it."""

    def __init__(self, direct, routed, headers: dict | None = None) -> None:
        self.direct, self.routed = _Recorder(direct), _Recorder(routed)
        self.headers = headers

    async def get(self, path: str, via: str = "direct", **kwargs) -> httpx.Response:
        """GET on both; asserts identical answers and who answered the direct app: "direct" (the direct
        route), "fastapi" (fell through to the router) or "gate" (refused before any route)."""
        async with _client(self.direct, self.headers) as a, _client(self.routed, self.headers) as b:
            fast = await a.get(path, **kwargs)
            slow = await b.get(path, **kwargs)
        assert self.routed.routed is (via != "gate"), path
        assert self.direct.routed is (via == "fastapi"), path
        assert fast.status_code == slow.status_code, (path, fast.text, slow.text)
        assert _headers(fast) == _headers(slow), path
        assert _stable(fast) == _stable(slow), path
        return fast


def _stable(r: httpx.Response) -> bytes | dict:
    """The body, less what every searchset Bundle has of its own (its id and when it was made)."""
    if not r.headers.get("content-type", "").startswith("application/fhir+json"):
        return r.content
    doc = r.json()
    if doc.get("resourceType") != "Bundle":
        return r.content
    doc.pop("id", None)
    doc.get("meta", {}).pop("lastUpdated", None)
    return doc


def _headers(r: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in r.headers.items() if k not in _VOLATILE)


@pytest.fixture
def pair(settings, store) -> _Pair:
    """Two apps over one database (auth off), with and without the direct route."""
    return _Pair(
        create_app(settings.with_(direct_route=True), store=store),
        create_app(settings.with_(direct_route=False), store=store),
    )


@pytest.fixture
async def seeded(settings, store) -> dict:
    """A Patient updated once (two versions), an Observation of hers, and a deleted Patient."""
    app = create_app(settings, store=store)
    async with _client(app) as c:
        p = (await c.post("Patient", json=patient("LÊ THỊ HỒNG NHUNG", "079190004321"))).json()
        await c.put(f"Patient/{p['id']}", json={**p, "gender": "female"})
        o = (await c.post("Observation", json=observation(f"Patient/{p['id']}", 6.1))).json()
        gone = (await c.post("Patient", json=patient("PHẠM VĂN ĐỨC", "079085009999"))).json()
        assert (await c.delete(f"Patient/{gone['id']}")).status_code in (200, 204)
    return {"patient": p["id"], "observation": o["id"], "deleted": gone["id"]}


async def test_read_is_the_same_bytes_and_headers(pair, seeded):
    r = await pair.get(f"Patient/{seeded['patient']}")
    assert r.status_code == 200
    assert r.json()["name"][0]["family"] == "LÊ"
    assert r.headers["etag"] == 'W/"2"'


async def test_read_with_summary_and_elements_is_the_same(pair, seeded):
    await pair.get(f"Patient/{seeded['patient']}", params={"_summary": "true"})
    r = await pair.get(f"Patient/{seeded['patient']}", params={"_elements": "name,gender", "_pretty": "true"})
    assert set(r.json()) == {"resourceType", "id", "meta", "name", "gender"}


async def test_bad_summary_is_the_same_operation_outcome_in_vietnamese(pair, seeded):
    r = await pair.get(
        f"Patient/{seeded['patient']}", params={"_summary": "count"}, headers={"Accept-Language": "vi"}
    )
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_conditional_reads_answer_304_the_same(pair, seeded):
    r = await pair.get(f"Patient/{seeded['patient']}", headers={"If-None-Match": 'W/"2"'})
    assert r.status_code == 304
    r = await pair.get(f"Patient/{seeded['patient']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 200
    r = await pair.get(
        f"Patient/{seeded['patient']}", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    assert r.status_code == 304


async def test_unknown_and_deleted_are_404_and_410_the_same(pair, seeded):
    assert (await pair.get("Patient/khong-ton-tai")).status_code == 404
    r = await pair.get(f"Patient/{seeded['deleted']}", headers={"Accept-Language": "vi"})
    assert r.status_code == 410
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_vread_current_old_missing_and_deletion_are_the_same(pair, seeded):
    assert (await pair.get(f"Patient/{seeded['patient']}/_history/1")).json()["gender"] == "male"
    assert (await pair.get(f"Patient/{seeded['patient']}/_history/2")).json()["gender"] == "female"
    assert (await pair.get(f"Patient/{seeded['patient']}/_history/9")).status_code == 404
    assert (await pair.get(f"Patient/{seeded['patient']}/_history/abc")).status_code == 404
    assert (await pair.get(f"Patient/{seeded['deleted']}/_history/2")).status_code == 410


async def test_xml_by_format_or_accept_goes_through_the_xml_layer_the_same(pair, seeded):
    r = await pair.get(f"Patient/{seeded['patient']}", params={"_format": "xml"})
    assert r.headers["content-type"].startswith("application/fhir+xml")
    assert b"<Patient" in r.content
    r = await pair.get(f"Patient/{seeded['patient']}", headers={"Accept": "application/fhir+xml"})
    assert b"<Patient" in r.content


async def test_unacceptable_format_is_406_the_same(pair, seeded):
    assert (await pair.get(f"Patient/{seeded['patient']}", headers={"Accept": "text/csv"})).status_code == 406
    assert (await pair.get(f"Patient/{seeded['patient']}", params={"_format": "csv"})).status_code == 406


async def test_identifier_and_patient_scoped_searches_are_the_same_bundle(pair, seeded):
    r = await pair.get("Patient", params={"identifier": f"{CCCD}|079190004321"})
    assert r.json()["total"] == 1
    r = await pair.get("Observation", params={"subject": f"Patient/{seeded['patient']}", "code": "2345-7"})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [seeded["observation"]]


async def test_search_errors_are_the_same(pair, seeded):
    r = await pair.get("Patient", params={"khong-co": "1"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_paths_it_does_not_own_fall_through_to_fastapi(pair, seeded):
    # Operations, type history, an id that is not a FHIR id, an unknown type: FastAPI's routes answer.
    await pair.get(f"Patient/{seeded['patient']}/$everything", via="fastapi")
    await pair.get("Patient/_history", via="fastapi")
    await pair.get("Patient/khong_hop_le", via="fastapi")
    await pair.get("KhongCoLoaiNay/1", via="fastapi")
    await pair.get("metadata", via="fastapi")


def _bearer(scope: str) -> dict:
    token = jwt.encode({"sub": "his-79001", "scope": scope, "exp": int(time.time()) + 300}, SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def audited(settings, store):
    """Two apps with auth on (so audit on), with and without the direct route."""
    on = settings.with_(auth_mode="jwt", jwt_secret=SECRET)
    direct = create_app(on.with_(direct_route=True), store=store)
    routed = create_app(on.with_(direct_route=False), store=store)
    yield direct, routed
    direct.state.audit_trail.close()
    routed.state.audit_trail.close()


async def test_auth_gate_refuses_the_same_before_the_direct_route(audited, seeded):
    direct, routed = audited
    # Refused requests never reach a route: both apps answer from the gate.
    no_token = _Pair(direct, routed)
    r = await no_token.get(f"Patient/{seeded['patient']}", via="gate")
    assert r.status_code == 401
    wrong_scope = _Pair(direct, routed, _bearer("system/Observation.read"))
    r = await wrong_scope.get(f"Patient/{seeded['patient']}", via="gate")
    assert r.status_code == 403


async def test_a_direct_read_is_audited_with_its_patient(audited, seeded, store):
    direct, routed = audited
    reader = _Pair(direct, routed, _bearer("system/Patient.read system/Observation.read"))
    await reader.get(f"Observation/{seeded['observation']}")
    assert direct.state.audit_trail.flush() and routed.state.audit_trail.flush()
    auditor = _client(direct, _bearer("system/AuditEvent.read"))
    async with auditor as c:
        r = await c.get("AuditEvent", params={"_count": "200"})
    target = f"Observation/{seeded['observation']}"
    events = [
        e["resource"]
        for e in r.json()["entry"]
        if any(x.get("what", {}).get("reference") == target for x in e["resource"].get("entity", []))
    ]
    # One from each app: the direct read is recorded like the routed one.
    assert len(events) == 2
    for event in events:
        assert event["subtype"][0]["code"] == "read"
        whats = {e["what"]["reference"] for e in event["entity"] if "what" in e}
        assert f"Patient/{seeded['patient']}" in whats
