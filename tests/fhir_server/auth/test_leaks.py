"""No path returns a type the token may not read: includes, chains, _has, $everything, Bundles, POST
_search and write-only tokens (the bypasses of issue 13 are the first tests here)."""

from __future__ import annotations

from tests.fhir_server.auth.helpers import bearer

PATIENT_ONLY = bearer("system/Patient.read")
OBSERVATION_ONLY = bearer("system/Observation.rs")
WRITE_ONLY = bearer("system/Patient.write")


def _types(bundle: dict) -> set[str]:
    return {e["resource"]["resourceType"] for e in bundle.get("entry", [])}


async def test_everything_returns_only_types_the_token_may_read(secured, records):
    r = await secured.get("Patient/an/$everything", headers=PATIENT_ONLY)
    assert r.status_code == 200
    assert _types(r.json()) == {"Patient"}


async def test_everything_asking_for_unreadable_type_in_body_is_403(secured, records):
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Observation"}]}
    r = await secured.post("Patient/an/$everything", json=body, headers=PATIENT_ONLY)
    assert r.status_code == 403


async def test_revinclude_of_unreadable_type_is_403(secured, records):
    r = await secured.get("Patient?_id=an&_revinclude=Observation:subject", headers=PATIENT_ONLY)
    assert r.status_code == 403


async def test_revinclude_wildcard_is_403_without_wildcard_read(secured, records):
    assert (await secured.get("Patient?_id=an&_revinclude=*", headers=PATIENT_ONLY)).status_code == 403


async def test_include_of_unreadable_target_is_403(secured, records):
    r = await secured.get("Observation?_include=Observation:subject", headers=OBSERVATION_ONLY)
    assert r.status_code == 403


async def test_include_iterate_of_unreadable_target_is_403(secured, records):
    r = await secured.get(
        "Observation?_include:iterate=Observation:subject:Patient", headers=OBSERVATION_ONLY
    )
    assert r.status_code == 403


async def test_chained_search_through_unreadable_type_is_403(secured, records):
    r = await secured.get("Observation?subject:Patient.name=NGUYỄN", headers=OBSERVATION_ONLY)
    assert r.status_code == 403


async def test_reverse_chain_has_on_unreadable_type_is_403(secured, records):
    r = await secured.get("Patient?_has:Observation:subject:code=2345-7", headers=PATIENT_ONLY)
    assert r.status_code == 403


async def test_include_of_readable_types_is_allowed(secured, records):
    both = bearer("system/Observation.rs system/Patient.rs")
    r = await secured.get("Observation?_include=Observation:subject:Patient", headers=both)
    assert r.status_code == 200
    assert _types(r.json()) == {"Observation", "Patient"}


async def test_post_search_is_checked_like_get(secured, records):
    r = await secured.post(
        "Patient/_search",
        content="_id=an&_revinclude=Observation:subject",
        headers={**PATIENT_ONLY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 403


async def test_post_search_with_read_scope_answers(secured, records):
    r = await secured.post(
        "Patient/_search",
        content="_id=an",
        headers={**PATIENT_ONLY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert r.json()["entry"][0]["resource"]["id"] == "an"


async def test_write_only_token_cannot_read(secured, records):
    assert (await secured.get("Patient/an", headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_search(secured, records):
    assert (await secured.get("Patient?name=AN", headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_post_search(secured, records):
    r = await secured.post(
        "Patient/_search",
        content="name=AN",
        headers={**WRITE_ONLY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 403


async def test_write_only_token_cannot_post_everything(secured, records):
    body = {"resourceType": "Parameters", "parameter": []}
    assert (await secured.post("Patient/an/$everything", json=body, headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_read_history(secured, records):
    assert (await secured.get("Patient/an/_history", headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_vread(secured, records):
    assert (await secured.get("Patient/an/_history/1", headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_match(secured, records):
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}}],
    }
    assert (await secured.post("Patient/$match", json=body, headers=WRITE_ONLY)).status_code == 403


async def test_write_only_token_cannot_read_through_batch_entries(secured, records):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient/an"}}],
    }
    r = await secured.post("", json=batch, headers=WRITE_ONLY)
    assert r.status_code == 403
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0]"]


async def test_write_only_token_cannot_search_through_transaction_entries(secured, records):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": "Observation?subject=Patient/an"}}],
    }
    assert (await secured.post("", json=bundle, headers=bearer("system/*.write"))).status_code == 403


async def test_failed_patch_test_does_not_echo_stored_value_to_write_only_token(secured, records):
    ops = [{"op": "test", "path": "/birthDate", "value": "2000-01-01"}]
    r = await secured.patch(
        "Patient/an", json=ops, headers={**WRITE_ONLY, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code >= 400
    assert "1990-05-15" not in r.text


async def test_write_only_update_answers_without_the_stored_resource(secured, records):
    from tests.fhir_server.vn_data import patient

    r = await secured.put("Patient/an", json=patient(res_id="an"), headers=WRITE_ONLY)
    assert r.status_code == 200
    assert "NGUYỄN" not in r.text


ALL_WRITE = bearer("system/*.write")


async def test_write_only_token_cannot_get_everything(secured, records):
    assert (await secured.get("Patient/an/$everything", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_get_type_level_everything(secured, records):
    assert (await secured.get("Patient/$everything?patient=Patient/an", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_read_system_history(secured, records):
    assert (await secured.get("_history", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_search_the_whole_system(secured, records):
    assert (await secured.get("?_type=Patient", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_read_dead_letters(secured):
    assert (await secured.get("http://test/ingest/dead-letters", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_open_the_clinician_view(secured, records):
    assert (await secured.get("http://test/ui/patient/an", headers=ALL_WRITE)).status_code == 403


async def test_write_only_token_cannot_read_an_archived_payload(secured):
    assert (await secured.get("http://test/ingest/inbox/1", headers=ALL_WRITE)).status_code == 403
