"""Audit gaps closed: deletes/updates of a patient's record name that patient, and /ingest is audited
(who, from where, outcome, archive id and record counts), refusals included."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lienthong.app import create_app
from tests.fhir_server.api.test_audit import SECRET, _events, _patients, bearer
from tests.fhir_server.vn_data import observation, patient

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
INBOX = "urn:lienthong:ingest-inbox"


@pytest.fixture
def audited_app(settings, store):
    """The app with auth on (so audit is on by default)."""
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET), store=store)
    yield app
    app.state.audit_trail.close()


@pytest.fixture
async def api(audited_app):
    """A client of the audited app from 10.79.0.15, acting as HIS 79001 with every scope and audit reads."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=audited_app, client=("10.79.0.15", 50123)),
        base_url="http://test/fhir",
        headers={"Content-Type": "application/fhir+json", **bearer("system/*.* system/AuditEvent.*")},
    ) as c:
        yield c


async def _with_observation(api) -> tuple[str, str]:
    pid = (await api.post("Patient", json=patient("LÊ THỊ HỒNG", "079185000222"))).json()["id"]
    r = await api.post("Observation", json=observation(f"Patient/{pid}"))
    assert r.status_code == 201, r.text
    return pid, r.json()["id"]


async def test_delete_of_an_observation_names_the_patient_it_belonged_to(api, audited_app):
    pid, oid = await _with_observation(api)
    assert (await api.delete(f"Observation/{oid}")).status_code in (200, 204)
    deletes = [e for e in await _events(api, audited_app) if e["action"] == "D"]
    assert len(deletes) == 1
    assert _patients(deletes[0]) == {f"Patient/{pid}"}


async def test_update_moving_an_observation_names_both_patients(api, audited_app):
    pid, oid = await _with_observation(api)
    other = (await api.post("Patient", json=patient("ĐỖ VĂN KHOA", "079090000333"))).json()["id"]
    moved = {**observation(f"Patient/{other}"), "id": oid}
    assert (await api.put(f"Observation/{oid}", json=moved)).status_code == 200
    updates = [e for e in await _events(api, audited_app) if e["action"] == "U"]
    assert _patients(updates[0]) == {f"Patient/{pid}", f"Patient/{other}"}


async def test_refused_delete_still_names_the_patient_whose_record_was_targeted(api, audited_app):
    pid, oid = await _with_observation(api)
    r = await api.delete(f"Observation/{oid}", headers=bearer("system/Patient.rs"))
    assert r.status_code == 403
    refused = [e for e in await _events(api, audited_app) if e["action"] == "D"]
    assert refused[0]["outcome"] == "4" and _patients(refused[0]) == {f"Patient/{pid}"}


def _ingest_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"].get("code") == "110107" or "ingest" in str(e.get("entity"))]


async def test_ingest_upload_is_audited_with_who_where_archive_and_counts(api, audited_app):
    payload = (SAMPLES / "qd130/79001-ngoai-tru.xml").read_bytes()
    r = await api.post(
        "http://test/ingest/qd130", content=payload, headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == 200, r.text
    inbox_id = str(r.json()["inbox_id"])
    event = next(e for e in await _events(api, audited_app) if e["type"]["code"] == "110107")
    assert event["type"]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
    assert event["action"] == "C" and event["outcome"] == "0"
    assert event["agent"][0]["who"]["identifier"]["value"] == "his-79001"
    assert event["agent"][0]["network"]["address"] == "10.79.0.15"
    archive = next(e for e in event["entity"] if e["what"].get("identifier", {}).get("system") == INBOX)
    assert archive["what"]["identifier"]["value"] == inbox_id
    details = {d["type"]: d["valueString"] for d in archive["detail"]}
    assert details["accepted"] == "1" and details["rejected"] == "0"


async def test_refused_ingest_is_audited_as_a_failure(api, audited_app):
    r = await api.post(
        "http://test/ingest/qd130",
        content=b"<GIAMDINHHS/>",
        headers={**bearer("system/Patient.cud", sub="ke-la"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 403
    event = next(e for e in await _events(api, audited_app) if e["type"]["code"] == "110107")
    assert event["outcome"] == "4" and event["outcomeDesc"] == "HTTP 403"
    assert event["agent"][0]["who"]["identifier"]["value"] == "ke-la"


async def test_ingest_without_token_is_audited_as_anonymous_failure(api, audited_app):
    r = await api.post(
        "http://test/ingest",
        content=b"MSH|^~\\&|X",
        headers={"Authorization": "", "Content-Type": "x-application/hl7-v2+er7"},
    )
    assert r.status_code == 401
    event = next(e for e in await _events(api, audited_app) if e["type"]["code"] == "110107")
    assert event["outcome"] == "4" and event["agent"][0]["who"] == {"display": "anonymous"}


async def test_dead_letter_listing_is_audited_as_a_query(api, audited_app):
    assert (await api.get("http://test/ingest/dead-letters")).status_code == 200
    events = [
        e
        for e in await _events(api, audited_app)
        if e["subtype"][0]["code"] == "search-system" and e["action"] == "E"
    ]
    assert events and events[0]["outcome"] == "0"
