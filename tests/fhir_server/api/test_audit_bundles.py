"""Writes inside transaction/batch Bundles and conditional deletes name the patients whose records they
changed or deleted (issue 13), on SQLite and PostgreSQL — refused Bundles included."""

from __future__ import annotations

from tests.fhir_server.api.test_audit import _events, _patients, bearer
from tests.fhir_server.api.test_audit_gaps import _with_observation, api, audited_app  # noqa: F401
from tests.fhir_server.vn_data import observation, patient


def _bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _bundle_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["subtype"][0]["code"] == "transaction"]


async def test_delete_inside_a_transaction_names_the_patient(api, audited_app):  # noqa: F811
    pid, oid = await _with_observation(api)
    r = await api.post(
        "", json=_bundle("transaction", {"request": {"method": "DELETE", "url": f"Observation/{oid}"}})
    )
    assert r.status_code == 200, r.text
    [event] = _bundle_events(await _events(api, audited_app))
    assert _patients(event) == {f"Patient/{pid}"}


async def test_delete_inside_a_batch_names_the_patient(api, audited_app):  # noqa: F811
    pid, oid = await _with_observation(api)
    r = await api.post(
        "", json=_bundle("batch", {"request": {"method": "DELETE", "url": f"Observation/{oid}"}})
    )
    assert r.status_code == 200, r.text
    [event] = _bundle_events(await _events(api, audited_app))
    assert _patients(event) == {f"Patient/{pid}"}


async def test_a_transaction_moving_an_observation_names_both_patients(api, audited_app):  # noqa: F811
    pid, oid = await _with_observation(api)
    other = (await api.post("Patient", json=patient("ĐỖ VĂN KHOA", "079090000333"))).json()["id"]
    moved = {**observation(f"Patient/{other}"), "id": oid}
    entry = {"resource": moved, "request": {"method": "PUT", "url": f"Observation/{oid}"}}
    assert (await api.post("", json=_bundle("transaction", entry))).status_code == 200
    [event] = _bundle_events(await _events(api, audited_app))
    assert _patients(event) == {f"Patient/{pid}", f"Patient/{other}"}


async def test_a_conditional_delete_names_the_patient(api, audited_app):  # noqa: F811
    pid, oid = await _with_observation(api)
    r = await api.delete("Observation", params={"_id": oid})
    assert r.status_code in (200, 204), r.text
    deletes = [e for e in await _events(api, audited_app) if e["action"] == "D"]
    assert deletes and _patients(deletes[0]) == {f"Patient/{pid}"}


async def test_a_refused_transaction_delete_still_names_the_patient(api, audited_app):  # noqa: F811
    pid, oid = await _with_observation(api)
    bundle = _bundle("transaction", {"request": {"method": "DELETE", "url": f"Observation/{oid}"}})
    r = await api.post("", json=bundle, headers=bearer("system/Patient.cruds"))
    assert r.status_code == 403, r.text
    [event] = _bundle_events(await _events(api, audited_app))
    assert event["outcome"] != "0" and _patients(event) == {f"Patient/{pid}"}
    assert (await api.get(f"Observation/{oid}")).status_code == 200  # nothing was deleted
