"""`patient/` scopes reach only the compartment of the token's patient."""

from __future__ import annotations

from tests.fhir_server.auth.helpers import bearer

AN = bearer("patient/*.rs", patient="an")


async def test_patient_search_returns_only_the_token_patient(secured, records):
    r = await secured.get("Patient", headers=AN)
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["an"]


async def test_observation_search_returns_only_the_token_patient_observations(secured, records):
    r = await secured.get("Observation", headers=AN)
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["obs-an"]


async def test_search_for_another_patient_observations_finds_nothing(secured, records):
    r = await secured.get("Observation?subject=Patient/binh", headers=AN)
    assert r.status_code == 200
    assert r.json().get("entry", []) == []


async def test_reading_another_patient_is_403(secured, records):
    assert (await secured.get("Patient/binh", headers=AN)).status_code == 403


async def test_reading_another_patient_observation_is_403(secured, records):
    assert (await secured.get("Observation/obs-binh", headers=AN)).status_code == 403


async def test_reading_own_observation_is_allowed(secured, records):
    assert (await secured.get("Observation/obs-an", headers=AN)).status_code == 200


async def test_everything_of_another_patient_is_403(secured, records):
    assert (await secured.get("Patient/binh/$everything", headers=AN)).status_code == 403


async def test_own_everything_is_allowed(secured, records):
    r = await secured.get("Patient/an/$everything", headers=AN)
    assert r.status_code == 200
    ids = {e["resource"]["id"] for e in r.json()["entry"]}
    assert ids == {"an", "obs-an"}


async def test_revinclude_in_patient_context_is_403(secured, records):
    r = await secured.get("Patient?_revinclude=Observation:subject", headers=AN)
    assert r.status_code == 403


async def test_batch_search_entry_is_narrowed_to_the_patient(secured, records):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Observation"}}],
    }
    r = await secured.post("", json=batch, headers=AN)
    assert r.status_code == 200
    inner = r.json()["entry"][0]["resource"]
    assert [e["resource"]["id"] for e in inner["entry"]] == ["obs-an"]


async def test_write_in_patient_context_is_403(secured, records):
    from tests.fhir_server.vn_data import observation

    r = await secured.post(
        "Observation", json=observation("Patient/an"), headers=bearer("patient/*.cruds", patient="an")
    )
    assert r.status_code == 403


async def test_patient_scope_without_patient_claim_is_403(secured, records):
    assert (await secured.get("Observation/obs-an", headers=bearer("patient/*.rs"))).status_code == 403


async def test_own_everything_leaves_out_the_access_log(secured, records):
    await secured.get("Patient/an", headers=AN)  # an access that may be audited about "an"
    r = await secured.get("Patient/an/$everything", headers=AN)
    assert {e["resource"]["resourceType"] for e in r.json()["entry"]} == {"Patient", "Observation"}


async def test_a_wildcard_system_scope_does_not_reach_the_access_log(secured, records):
    r = await secured.get("AuditEvent", headers=bearer("system/*.read"))
    assert r.status_code == 403
