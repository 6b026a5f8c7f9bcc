"""Writes whose references point nowhere: refused under strict (the API default), warned under lenient."""

from __future__ import annotations

import httpx
import pytest

from fhir_server.settings import Settings
from lienthong.app import create_app
from tests.fhir_server.api.test_transaction import post, put, tx
from tests.fhir_server.vn_data import observation, patient

MISSING = "Patient/khong-ton-tai"


@pytest.fixture
async def lenient(db_url, store):
    """A client of an app configured with LIENTHONG_REFERENTIAL_INTEGRITY=lenient."""
    app = create_app(Settings(database_url=db_url, referential_integrity="lenient"), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test/fhir", headers={"Content-Type": "application/fhir+json"}
    ) as c:
        yield c


async def test_unresolved_urn_uuid_fails_the_transaction_naming_the_entry(client):
    bundle = tx(
        post(patient(), "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"),
        post(observation("urn:uuid:00000000-0000-4000-8000-000000000000")),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["diagnostics"].startswith("Bundle.entry[1]:")
    assert "urn:uuid:00000000-0000-4000-8000-000000000000" in issue["diagnostics"]
    assert "Bundle.entry[1].resource.subject" in issue["expression"]
    assert (await client.get("Patient?identifier=079090001234")).json().get("total", 0) == 0


async def test_unresolved_urn_uuid_is_refused_even_when_lenient(lenient):
    r = await lenient.post("", json=tx(post(observation("urn:uuid:00000000-0000-4000-8000-000000000000"))))
    assert r.status_code == 400


async def test_reference_to_missing_resource_fails_strict_transaction(client):
    r = await client.post("", json=tx(put(patient(res_id="p1")), put(observation(MISSING, res_id="o1"))))
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["code"] == "not-found"
    assert issue["diagnostics"].startswith("Bundle.entry[1]:") and MISSING in issue["diagnostics"]
    assert "Bundle.entry[1].resource.subject" in issue["expression"]
    assert (await client.get("Patient/p1")).status_code == 404  # rolled back whole


async def test_lenient_transaction_stores_and_warns_on_the_entry(lenient):
    r = await lenient.post("", json=tx(put(observation(MISSING, res_id="o1"))))
    assert r.status_code == 200, r.text
    outcome = r.json()["entry"][0]["response"]["outcome"]
    assert outcome["issue"][0]["severity"] == "warning"
    assert MISSING in outcome["issue"][0]["diagnostics"]
    assert (await lenient.get("Observation/o1")).status_code == 200


async def test_references_to_entries_of_the_same_bundle_resolve_in_any_order(client):
    # The Observation (POST, processed before PUTs) references the Patient PUT later in the Bundle.
    bundle = tx(post(observation("Patient/p-sau")), put(patient(res_id="p-sau")))
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text


async def test_reference_to_a_resource_the_bundle_deletes_is_refused(client):
    await client.put("Patient/p-xoa", json=patient(res_id="p-xoa"))
    bundle = tx({"request": {"method": "DELETE", "url": "Patient/p-xoa"}}, post(observation("Patient/p-xoa")))
    assert (await client.post("", json=bundle)).status_code == 400


async def test_reference_to_a_deleted_resource_is_refused(client):
    await client.put("Patient/p-cu", json=patient(res_id="p-cu"))
    await client.delete("Patient/p-cu")
    r = await client.post("Observation", json=observation("Patient/p-cu"))
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Observation.subject"]


async def test_rest_create_with_dangling_reference_is_refused_then_accepted_once_target_exists(client):
    r = await client.post("Observation", json=observation(MISSING))
    assert r.status_code == 400, r.text
    await client.put(MISSING, json=patient(res_id="khong-ton-tai"))
    assert (await client.post("Observation", json=observation(MISSING))).status_code == 201


async def test_rest_update_under_lenient_reports_the_warning_on_request(lenient):
    r = await lenient.put(
        "Observation/o2",
        json=observation(MISSING, res_id="o2"),
        headers={"Prefer": "return=OperationOutcome"},
    )
    assert r.status_code == 201
    assert r.json()["issue"][0]["severity"] == "warning"


async def test_versioned_absolute_and_external_references(client):
    await client.put("Patient/p2", json=patient(res_id="p2"))
    ok = [
        "Patient/p2/_history/1",
        "http://test/fhir/Patient/p2",
        "https://his.benhvien.vn/fhir/Patient/ben-ngoai",  # another server's resource: not ours to check
    ]
    for ref in ok:
        assert (await client.post("Observation", json=observation(ref))).status_code == 201, ref
    assert (
        await client.post("Observation", json=observation("http://test/fhir/Patient/nope"))
    ).status_code == 400


async def test_batch_refuses_only_the_entry_with_the_dangling_reference(client):
    bundle = tx(post(patient()), post(observation(MISSING)), kind="batch")
    out = (await client.post("", json=bundle)).json()
    assert out["entry"][0]["response"]["status"].startswith("201")
    assert out["entry"][1]["response"]["status"].startswith("400")


def test_policy_setting_is_validated(monkeypatch):
    monkeypatch.setenv("LIENTHONG_REFERENTIAL_INTEGRITY", "lenient")
    assert Settings.from_env().referential_integrity == "lenient"
    monkeypatch.setenv("LIENTHONG_REFERENTIAL_INTEGRITY", "loose")
    with pytest.raises(ValueError):
        Settings.from_env()
    monkeypatch.delenv("LIENTHONG_REFERENTIAL_INTEGRITY")
    assert Settings.from_env().referential_integrity == "strict"
