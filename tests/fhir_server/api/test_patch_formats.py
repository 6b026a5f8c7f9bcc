"""PATCH in its three formats (JSON Patch, JSON Merge Patch, FHIRPath Patch), conditional patch and
delete, and `Prefer: return=…` on every write; over the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from tests.fhir_server.vn_data import CCCD, patient

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
FHIR = {"Content-Type": "application/fhir+json"}


async def _create(client, **kwargs) -> dict:
    r = await client.post("Patient", json=patient(**kwargs))
    assert r.status_code == 201, r.text
    return r.json()


def _operation(op_type: str, path: str, **parts) -> dict:
    """One FHIRPath Patch operation parameter; value parts are given as value<Type>=…"""
    part = [{"name": "type", "valueCode": op_type}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name.startswith("value"):
            part.append({"name": "value", name: value})
        elif name in ("index", "source", "destination"):
            part.append({"name": name, "valueInteger": value})
        else:
            part.append({"name": name, "valueString": value})
    return {"name": "operation", "part": part}


def _fhirpath_patch(*operations: dict) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": list(operations)})


# -- JSON Merge Patch (RFC 7386) -------------------------------------------------------------------
async def test_merge_patch_sets_and_removes_elements(client):
    created = await _create(client, name="TRẦN THỊ BÌNH")
    body = {"gender": "female", "birthDate": None, "telecom": [{"system": "phone", "value": "0912345678"}]}
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps(body), headers=MERGE)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["gender"] == "female"
    assert "birthDate" not in patched
    assert patched["telecom"][0]["value"] == "0912345678"
    assert patched["name"] == created["name"]
    assert patched["meta"]["versionId"] == "2"


async def test_merge_patch_merges_nested_objects_member_by_member(client):
    created = await _create(client)
    created_obs = await client.post(
        "Observation",
        json={
            "resourceType": "Observation",
            "status": "preliminary",
            "code": {"text": "Đường huyết"},
            "subject": {"reference": f"Patient/{created['id']}"},
            "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
        },
    )
    obs = created_obs.json()
    body = {"status": "final", "valueQuantity": {"value": 6.1}}
    r = await client.patch(f"Observation/{obs['id']}", content=orjson.dumps(body), headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["valueQuantity"] == {"value": 6.1, "unit": "mmol/L"}
    assert r.json()["status"] == "final"


async def test_object_sent_as_plain_json_is_a_merge_patch(client):
    """fhirpy's patch() and save(fields=…) send a merge patch as application/json."""
    created = await _create(client, name="LÊ VĂN CƯỜNG")
    r = await client.patch(
        f"Patient/{created['id']}",
        content=orjson.dumps({"active": True}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True


async def test_merge_patch_producing_an_invalid_resource_is_400_and_writes_nothing(client):
    created = await _create(client)
    body = {"gender": "nam"}
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps(body), headers=MERGE)
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"Patient/{created['id']}")).json()["meta"]["versionId"] == "1"


async def test_merge_patch_must_not_change_the_id(client):
    created = await _create(client)
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps({"id": "khac"}), headers=MERGE)
    assert r.status_code == 422


async def test_merge_patch_media_type_with_an_array_body_is_400(client):
    created = await _create(client)
    r = await client.patch(f"Patient/{created['id']}", content=b"[]", headers=MERGE)
    assert r.status_code == 400


async def test_json_patch_media_type_with_an_object_body_is_400(client):
    created = await _create(client)
    r = await client.patch(f"Patient/{created['id']}", content=b'{"gender": "female"}', headers=JSON_PATCH)
    assert r.status_code == 400
    assert "array" in r.json()["issue"][0]["diagnostics"]


# -- FHIRPath Patch ------------------------------------------------------------------------------
async def test_fhirpath_patch_replace_add_and_delete(client):
    created = await _create(client, name="PHẠM THỊ DUNG")
    body = _fhirpath_patch(
        _operation("replace", "Patient.gender", valueCode="female"),
        _operation("add", "Patient", name="telecom", valueContactPoint={"system": "phone", "value": "0987"}),
        _operation("delete", "Patient.birthDate"),
        _operation("add", "Patient", name="deceased", valueBoolean=False),
    )
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["gender"] == "female"
    assert patched["telecom"] == [{"system": "phone", "value": "0987"}]
    assert "birthDate" not in patched
    assert patched["deceasedBoolean"] is False


async def test_fhirpath_patch_insert_and_move_in_a_list(client):
    created = await _create(client, name="HOÀNG VĂN EM")
    body = _fhirpath_patch(
        _operation("insert", "Patient.name[0].given", index=0, valueString="ĐỨC"),
        _operation("move", "Patient.name[0].given", source=0, destination=1),
    )
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 200, r.text
    assert r.json()["name"][0]["given"] == ["VĂN", "ĐỨC", "EM"]


async def test_fhirpath_patch_replace_inside_a_list_item(client):
    created = await _create(client)
    body = _fhirpath_patch(_operation("replace", "Patient.name[0].family", valueString="NGÔ"))
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 200, r.text
    assert r.json()["name"][0]["family"] == "NGÔ"


async def test_fhirpath_patch_with_a_filter_is_refused_naming_the_operation(client):
    created = await _create(client)
    body = _fhirpath_patch(
        _operation("replace", "Patient.gender", valueCode="female"),
        _operation("delete", "Patient.identifier.where(system='x')"),
    )
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 422
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert "operation 2 (delete)" in diagnostics
    assert (await client.get(f"Patient/{created['id']}")).json()["gender"] == "male"


async def test_fhirpath_patch_unknown_operation_type_is_400(client):
    created = await _create(client)
    body = _fhirpath_patch(_operation("upsert", "Patient.gender", valueCode="female"))
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 400
    assert "operation 1 (upsert)" in r.json()["issue"][0]["diagnostics"]


async def test_fhirpath_patch_replace_of_an_absent_element_is_422(client):
    created = await _create(client)
    body = _fhirpath_patch(_operation("replace", "Patient.maritalStatus", valueCodeableConcept={"text": "x"}))
    r = await client.patch(f"Patient/{created['id']}", content=body, headers=FHIR)
    assert r.status_code == 422


async def test_fhirpath_patch_in_a_transaction_bundle(client):
    created = await _create(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": orjson.loads(
                    _fhirpath_patch(_operation("replace", "Patient.gender", valueCode="other"))
                ),
                "request": {"method": "PATCH", "url": f"Patient/{created['id']}"},
            }
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    assert (await client.get(f"Patient/{created['id']}")).json()["gender"] == "other"


# -- conditional patch ------------------------------------------------------------------------------
async def test_conditional_patch_patches_the_single_match(client):
    created = await _create(client, name="VÕ THỊ GIANG", cccd="079090009999")
    r = await client.patch(
        f"Patient?identifier={CCCD}|079090009999", content=orjson.dumps({"gender": "female"}), headers=MERGE
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == created["id"]
    assert r.json()["gender"] == "female"


async def test_conditional_patch_without_a_match_is_404(client):
    await _create(client)
    r = await client.patch(
        f"Patient?identifier={CCCD}|000000000000", content=orjson.dumps({"gender": "female"}), headers=MERGE
    )
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_conditional_patch_with_several_matches_is_412(client):
    await _create(client, name="ĐỖ VĂN HÙNG", cccd="079090000001")
    await _create(client, name="ĐỖ THỊ HOA", cccd="079090000002")
    r = await client.patch("Patient?family=ĐỖ", content=orjson.dumps({"active": False}), headers=MERGE)
    assert r.status_code == 412


async def test_conditional_patch_with_json_patch(client):
    await _create(client, cccd="079090007777")
    ops = [{"op": "add", "path": "/active", "value": True}]
    r = await client.patch(
        f"Patient?identifier={CCCD}|079090007777", content=orjson.dumps(ops), headers=JSON_PATCH
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True


async def test_patch_on_a_type_without_criteria_is_400(client):
    r = await client.patch("Patient", content=orjson.dumps({"active": False}), headers=MERGE)
    assert r.status_code == 400


# -- conditional delete and Prefer --------------------------------------------------------------------
async def test_conditional_delete_without_a_match_is_204(client):
    r = await client.delete(f"Patient?identifier={CCCD}|000000000000")
    assert r.status_code == 204
    assert r.content == b""


async def test_conditional_delete_with_several_matches_is_412(client):
    await _create(client, name="ĐỖ VĂN HÙNG", cccd="079090000001")
    await _create(client, name="ĐỖ THỊ HOA", cccd="079090000002")
    r = await client.delete("Patient?family=ĐỖ")
    assert r.status_code == 412


async def test_delete_with_prefer_minimal_is_204(client):
    created = await _create(client)
    r = await client.delete(f"Patient/{created['id']}", headers={"Prefer": "return=minimal"})
    assert r.status_code == 204
    assert r.content == b""


async def test_conditional_delete_without_match_can_ask_for_an_outcome(client):
    r = await client.delete(
        f"Patient?identifier={CCCD}|000000000000", headers={"Prefer": "return=OperationOutcome"}
    )
    assert r.status_code == 200
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_patch_honours_prefer_minimal_and_operation_outcome(client):
    created = await _create(client)
    url = f"Patient/{created['id']}"
    minimal = await client.patch(
        url, content=orjson.dumps({"gender": "female"}), headers={**MERGE, "Prefer": "return=minimal"}
    )
    assert minimal.status_code == 200
    assert minimal.content == b""
    assert minimal.headers["etag"] == 'W/"2"'
    outcome = await client.patch(
        url, content=orjson.dumps({"active": True}), headers={**MERGE, "Prefer": "return=OperationOutcome"}
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"
    representation = await client.patch(
        url, content=orjson.dumps({"active": False}), headers={**MERGE, "Prefer": "return=representation"}
    )
    assert representation.json()["active"] is False


async def test_update_honours_prefer_minimal(client):
    created = await _create(client)
    r = await client.put(
        f"Patient/{created['id']}", json={**created, "gender": "female"}, headers={"Prefer": "return=minimal"}
    )
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["etag"] == 'W/"2"'


async def test_capability_statement_lists_the_patch_formats(client):
    formats = (await client.get("metadata")).json()["patchFormat"]
    assert {"application/json-patch+json", "application/merge-patch+json", "application/fhir+json"} <= set(
        formats
    )


# -- concurrency ------------------------------------------------------------------------------------
async def test_racing_conditional_patches_lose_no_update(live_server):
    """Two clients append phone numbers to the same patient through conditional JSON Patch at once:
    every append survives (criteria lock + version-checked writes, retried on conflict)."""
    async with httpx.AsyncClient(base_url=live_server, timeout=60) as http:
        r = await http.post("/Patient", json={**patient(cccd="079090008888"), "telecom": []})
        assert r.status_code == 201, r.text
        patient_id = r.json()["id"]
        url = f"/Patient?identifier={CCCD}|079090008888"

        async def append(who: str, n: int) -> None:
            for i in range(n):
                ops = [
                    {"op": "add", "path": "/telecom/-", "value": {"system": "phone", "value": f"{who}{i}"}}
                ]
                r = await http.patch(url, content=orjson.dumps(ops), headers=JSON_PATCH)
                assert r.status_code == 200, r.text

        await asyncio.gather(append("09001", 8), append("09002", 8))
        final = (await http.get(f"/Patient/{patient_id}")).json()
    assert len(final["telecom"]) == 16
    assert final["meta"]["versionId"] == "17"
