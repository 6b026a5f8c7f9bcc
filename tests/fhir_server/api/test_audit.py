"""Audit trail (issue 13): every access to patient data leaves an AuditEvent (IHE BALP codes) with the
right patient, queryable through normal search, append-only, and never dropped when the queue is full.

Runs on SQLite and PostgreSQL, over the real app (httpx ASGI transport) with JWT auth on.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from jose import jwt

from lienthong.app import create_app
from tests.fhir_server.vn_data import observation, patient

SECRET = "khoa-bi-mat-cua-so-y-te-tinh-dai-du-32-byte!"


def bearer(scope: str = "system/*.*", sub: str = "his-79001") -> dict:
    """Authorization header with a signed token of `sub` holding `scope`."""
    token = jwt.encode({"sub": sub, "scope": scope, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def audited_app(settings, store):
    """The app with auth on (so audit is on by default)."""
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET), store=store)
    yield app
    app.state.audit_trail.close()


@pytest.fixture
async def api(audited_app):
    """An httpx client of the audited app, acting as hospital HIS 79001 with every scope."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=audited_app, client=("10.79.0.15", 50123)),
        base_url="http://test/fhir",
        # A wildcard does not reach the access log: the auditor names AuditEvent.
        headers={"Content-Type": "application/fhir+json", **bearer("system/*.* system/AuditEvent.*")},
    ) as c:
        yield c


async def _events(api, audited_app, **params) -> list[dict]:
    """The AuditEvents matching `params`, once the writer has caught up."""
    assert audited_app.state.audit_trail.flush()
    r = await api.get("AuditEvent", params={"_count": "200", **params})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def _subtype(event: dict) -> str:
    return event["subtype"][0]["code"]


def _patients(event: dict) -> set[str]:
    return {
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "1" and "what" in e
    }


async def _create_patient(api, name="TRẦN THỊ BÍCH", cccd="079185000111") -> str:
    r = await api.post("Patient", json=patient(name, cccd))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_read_of_a_patient_is_audited_with_who_where_and_outcome(api, audited_app):
    pid = await _create_patient(api)
    assert (await api.get(f"Patient/{pid}")).status_code == 200
    reads = [e for e in await _events(api, audited_app, patient=pid) if _subtype(e) == "read"]
    assert len(reads) == 1
    event = reads[0]
    assert event["type"]["code"] == "rest"
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert _patients(event) == {f"Patient/{pid}"}
    agent = event["agent"][0]
    assert agent["who"]["identifier"]["value"] == "his-79001"
    assert agent["requestor"] is True
    assert agent["network"]["address"] == "10.79.0.15"


async def test_create_is_audited_as_action_c(api, audited_app):
    pid = await _create_patient(api)
    creates = [e for e in await _events(api, audited_app, patient=pid) if _subtype(e) == "create"]
    assert [e["action"] for e in creates] == ["C"]


async def test_read_of_an_observation_names_its_patient(api, audited_app):
    pid = await _create_patient(api)
    r = await api.post("Observation", json=observation(f"Patient/{pid}", 7.1))
    oid = r.json()["id"]
    assert (await api.get(f"Observation/{oid}")).status_code == 200
    reads = [e for e in await _events(api, audited_app, patient=pid) if _subtype(e) == "read"]
    assert len(reads) == 1
    assert {e["what"]["reference"] for e in reads[0]["entity"] if "what" in e} >= {f"Observation/{oid}"}


async def test_search_names_every_patient_in_the_results_and_keeps_the_query(api, audited_app):
    first = await _create_patient(api, "LÊ VĂN CƯỜNG", "079090000201")
    second = await _create_patient(api, "LÊ THỊ DUNG", "079090000202")
    assert (await api.get("Patient", params={"family": "LÊ"})).status_code == 200
    searches = [e for e in await _events(api, audited_app, patient=first) if _subtype(e) == "search-type"]
    assert len(searches) == 1
    event = searches[0]
    assert event["action"] == "E"
    assert _patients(event) == {f"Patient/{first}", f"Patient/{second}"}
    query = next(e for e in event["entity"] if e["role"]["code"] == "24")
    assert "family=" in base64.b64decode(query["query"]).decode()


async def test_everything_operation_is_audited_for_its_patient(api, audited_app):
    pid = await _create_patient(api)
    await api.post("Observation", json=observation(f"Patient/{pid}"))
    assert (await api.get(f"Patient/{pid}/$everything")).status_code == 200
    ops = [e for e in await _events(api, audited_app, patient=pid) if _subtype(e) == "operation"]
    assert len(ops) == 1
    assert ops[0]["action"] == "E"


async def test_update_and_delete_are_audited(api, audited_app):
    pid = await _create_patient(api)
    body = {**patient("PHẠM VĂN ĐỨC", "079090000303"), "id": pid}
    assert (await api.put(f"Patient/{pid}", json=body)).status_code == 200
    assert (await api.delete(f"Patient/{pid}")).status_code == 200
    kinds = sorted((_subtype(e), e["action"]) for e in await _events(api, audited_app, patient=pid))
    assert ("update", "U") in kinds
    assert ("delete", "D") in kinds


async def test_refused_access_is_audited_as_a_failure(api, audited_app):
    pid = await _create_patient(api)
    r = await api.get(f"Patient/{pid}", headers={"Authorization": "Bearer khong-phai-token"})
    assert r.status_code == 401
    failed = [e for e in await _events(api, audited_app, patient=pid) if e["outcome"] != "0"]
    assert len(failed) == 1
    assert failed[0]["outcome"] == "4"
    assert failed[0]["agent"][0]["who"] == {"display": "anonymous"}


async def test_audit_events_are_found_by_date(api, audited_app):
    pid = await _create_patient(api)
    await api.get(f"Patient/{pid}")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert await _events(api, audited_app, patient=pid, date=f"ge{today}")
    assert not await _events(api, audited_app, patient=pid, date="lt2020-01-01")


async def test_audit_event_cannot_be_updated(api, audited_app):
    await _create_patient(api)
    event = (await _events(api, audited_app))[0]
    r = await api.put(f"AuditEvent/{event['id']}", json={**event, "outcome": "8"})
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_audit_event_cannot_be_deleted(api, audited_app):
    await _create_patient(api)
    event = (await _events(api, audited_app))[0]
    r = await api.delete(f"AuditEvent/{event['id']}")
    assert r.status_code == 405
    assert (await api.get(f"AuditEvent/{event['id']}")).status_code == 200


async def test_audit_event_cannot_be_changed_inside_a_transaction_bundle(api, audited_app):
    await _create_patient(api)
    event = (await _events(api, audited_app))[0]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{event['id']}"}}],
    }
    r = await api.post("", json=bundle)
    assert r.status_code == 405, r.text
    assert (await api.get(f"AuditEvent/{event['id']}")).status_code == 200


async def test_full_queue_fails_the_request_with_503_instead_of_dropping_the_event(settings, store):
    app = create_app(
        settings.with_(auth_mode="jwt", jwt_secret=SECRET, audit_queue_size=2, audit_overflow="fail"),
        store=store,
    )
    trail = app.state.audit_trail
    trail.pause()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir", headers=bearer()
        ) as c:
            statuses = [(await c.get("Patient/khong-co")).status_code for _ in range(3)]
            assert statuses == [404, 404, 503]
            r = await c.get("Patient/khong-co")
            assert r.headers["retry-after"] == "1"
            assert r.json()["issue"][0]["code"] == "transient"
            trail.resume()
            assert trail.flush()
            assert trail.written == 2
            assert (await c.get("Patient/khong-co")).status_code == 404
    finally:
        trail.close()


async def test_full_queue_blocks_the_request_until_the_writer_catches_up(settings, store):
    app = create_app(
        settings.with_(auth_mode="jwt", jwt_secret=SECRET, audit_queue_size=1, audit_block_timeout=0.2),
        store=store,
    )
    trail = app.state.audit_trail
    trail.pause()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir", headers=bearer()
        ) as c:
            assert (await c.get("Patient/khong-co")).status_code == 404
            assert (await c.get("Patient/khong-co")).status_code == 503  # waited, still full
            trail.resume()
            assert (await c.get("Patient/khong-co")).status_code == 404
            assert trail.flush()
            assert trail.written == 2
    finally:
        trail.close()


async def test_close_writes_every_queued_event(settings, store):
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET), store=store)
    trail = app.state.audit_trail
    trail.pause()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test/fhir", headers=bearer()
    ) as c:
        for _ in range(5):
            await c.get("Patient/khong-co")
    trail.close()
    assert trail.written == 5
    assert store.count_current("AuditEvent") == 5


async def test_no_audit_when_auth_is_off_by_default(client, store):
    await client.post("Patient", json=patient())
    assert client._transport.app.state.audit_trail is None
    assert store.count_current("AuditEvent") == 0


async def test_metadata_is_not_audited(api, audited_app):
    assert (await api.get("metadata")).status_code == 200
    assert audited_app.state.audit_trail.flush()
    assert audited_app.state.audit_trail.written == 0


async def test_transaction_bundle_names_the_patients_it_wrote(api, audited_app):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1d2a40-1111-4c2e-9a57-0a4f3b6c7d01",
                "resource": patient("VŨ THỊ HẠNH", "079185000999"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation("urn:uuid:6f1d2a40-1111-4c2e-9a57-0a4f3b6c7d01", 6.2),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    r = await api.post("", json=bundle)
    assert r.status_code == 200, r.text
    pid = r.json()["entry"][0]["response"]["location"].split("/")[1]
    events = [e for e in await _events(api, audited_app, patient=pid) if _subtype(e) == "transaction"]
    assert len(events) == 1
    assert events[0]["action"] == "E"


async def test_create_of_an_observation_names_its_patient(api, audited_app):
    pid = await _create_patient(api)
    r = await api.post(
        "Observation", json=observation(f"Patient/{pid}", 8.0), headers={"Prefer": "return=minimal"}
    )
    assert r.status_code == 201
    creates = [e for e in await _events(api, audited_app, patient=pid, subtype="create")]
    assert {tuple(sorted(_patients(e))) for e in creates} == {(f"Patient/{pid}",)}
    assert len(creates) == 2
