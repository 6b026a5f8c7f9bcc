"""A hospital client (facility claim) writes only resources of its own facility."""

from __future__ import annotations

from fhir_server.ids import deterministic_id
from tests.fhir_server.auth.conftest import ADMIN
from tests.fhir_server.auth.helpers import bearer
from tests.fhir_server.vn_data import patient

CHO_RAY = bearer("system/*.cruds", facility="79001")


def of(facility: str, body: dict) -> dict:
    """The resource marked as coming from a facility (meta.source)."""
    return {**body, "meta": {"source": f"urn:vn:cskcb:{facility}"}}


async def test_hospital_creates_its_own_patient(secured):
    r = await secured.post("Patient", json=of("79001", patient()), headers=CHO_RAY)
    assert r.status_code == 201


async def test_hospital_cannot_create_for_another_facility(secured):
    r = await secured.post("Patient", json=of("01001", patient()), headers=CHO_RAY)
    assert r.status_code == 403


async def test_hospital_cannot_write_a_resource_naming_no_facility(secured):
    assert (await secured.post("Patient", json=patient(), headers=CHO_RAY)).status_code == 403


async def test_hospital_cannot_overwrite_another_hospital_patient_by_id(secured):
    theirs = of("01001", patient("LÊ VĂN CƯỜNG", "001090009999", res_id="bach-mai-1"))
    assert (await secured.put("Patient/bach-mai-1", json=theirs, headers=ADMIN)).status_code == 201
    mine = of("79001", patient("LÊ VĂN CƯỜNG", "001090009999", res_id="bach-mai-1"))
    r = await secured.put("Patient/bach-mai-1", json=mine, headers=CHO_RAY)
    assert r.status_code == 403


async def test_hospital_cannot_delete_another_hospital_patient(secured):
    theirs = of("01001", patient("LÊ VĂN CƯỜNG", "001090009999", res_id="bach-mai-2"))
    await secured.put("Patient/bach-mai-2", json=theirs, headers=ADMIN)
    assert (await secured.delete("Patient/bach-mai-2", headers=CHO_RAY)).status_code == 403


async def test_hospital_cannot_write_an_encounter_served_by_another_facility(secured):
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "identifier": [{"system": "urn:vn:cskcb:79001:ma-lk", "value": "LK-0001"}],
        "serviceProvider": {"reference": f"Organization/{deterministic_id('Organization', '01001')}"},
    }
    assert (await secured.post("Encounter", json=encounter, headers=CHO_RAY)).status_code == 403


async def test_hospital_cannot_write_another_facility_through_a_transaction(secured):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": of("79001", patient()), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": of("01001", patient("PHẠM THỊ DUNG", "001185007777")),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    r = await secured.post("", json=bundle, headers=CHO_RAY)
    assert r.status_code == 403
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]


async def test_hospital_cannot_patch_the_owner_of_its_resource(secured):
    r = await secured.post("Patient", json=of("79001", patient()), headers=CHO_RAY)
    ops = [{"op": "replace", "path": "/meta/source", "value": "urn:vn:cskcb:01001"}]
    r = await secured.patch(
        f"Patient/{r.json()['id']}",
        json=ops,
        headers={**CHO_RAY, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403


async def test_hospital_conditional_update_of_another_hospital_patient_is_403(secured):
    theirs = of("01001", patient("LÊ VĂN CƯỜNG", "001090009999", res_id="bach-mai-3"))
    await secured.put("Patient/bach-mai-3", json=theirs, headers=ADMIN)
    mine = of("79001", patient("LÊ VĂN CƯỜNG", "001090009999"))
    r = await secured.put("Patient?identifier=001090009999", json=mine, headers=CHO_RAY)
    assert r.status_code == 403


async def test_hospital_updates_its_own_patient_by_id(secured):
    mine = of("79001", patient("VÕ MINH ĐỨC", "079095002222", res_id="cho-ray-1"))
    assert (await secured.put("Patient/cho-ray-1", json=mine, headers=CHO_RAY)).status_code == 201
    mine["gender"] = "other"
    assert (await secured.put("Patient/cho-ray-1", json=mine, headers=CHO_RAY)).status_code == 200


async def test_hospital_cannot_patch_the_owner_through_a_transaction(secured):
    import base64

    import orjson

    r = await secured.post("Patient", json=of("79001", patient()), headers=CHO_RAY)
    ops = [{"op": "replace", "path": "/meta/source", "value": "urn:vn:cskcb:01001"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(ops)).decode(),
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{r.json()['id']}"}}],
    }
    refused = await secured.post("", json=bundle, headers=CHO_RAY)
    assert refused.status_code == 403
    assert "facility owns" in refused.json()["issue"][0]["diagnostics"]
