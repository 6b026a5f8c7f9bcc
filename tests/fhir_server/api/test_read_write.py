"""read, vread, create, update, patch, delete and their HTTP headers, on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson

from tests.fhir_server.vn_data import CCCD, patient

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


async def _create(client, body=None) -> dict:
    r = await client.post("Patient", json=body or patient())
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_assigns_id_version_and_last_updated(client):
    body = await _create(client)
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert len(body["id"]) == 36


async def test_create_ignores_client_id_and_keeps_element_order(client):
    sent = {
        "resourceType": "Patient",
        "id": "client-chosen",
        "gender": "female",
        "active": True,
        "name": [{"text": "TRẦN THỊ BÌNH"}],
    }
    r = await client.post("Patient", json=sent)
    body = r.json()
    assert body["id"] != "client-chosen"
    assert list(body)[3:] == ["gender", "active", "name"]
    assert body["name"][0]["text"] == "TRẦN THỊ BÌNH"


async def test_read_returns_stored_bytes_with_etag_and_last_modified(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.headers["etag"] == 'W/"1"'
    assert "GMT" in r.headers["last-modified"]
    assert r.json() == created


async def test_read_unknown_resource_is_404_operation_outcome(client):
    r = await client.get("Patient/khong-co")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "not-found"


async def test_unknown_resource_type_is_404(client):
    r = await client.get("BenhNhan/1")
    assert r.status_code == 404
    assert "BenhNhan" in r.json()["issue"][0]["diagnostics"]


async def test_update_creates_new_version_and_vread_returns_both(client):
    created = await _create(client)
    changed = dict(created, gender="other")
    r = await client.put(f"Patient/{created['id']}", json=changed)
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"2"'
    v1 = await client.get(f"Patient/{created['id']}/_history/1")
    v2 = await client.get(f"Patient/{created['id']}/_history/2")
    assert v1.json()["gender"] == "male"
    assert v2.json()["gender"] == "other"


async def test_update_with_unchanged_content_keeps_the_version(client):
    created = await _create(client)
    r = await client.put(f"Patient/{created['id']}", json=created)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "1"


async def test_update_as_create_with_client_id_returns_201_and_location(client):
    r = await client.put("Patient/bn-79999-000123", json=patient(res_id="bn-79999-000123"))
    assert r.status_code == 201
    assert r.headers["location"].endswith("/fhir/Patient/bn-79999-000123/_history/1")


async def test_update_id_mismatch_is_400(client):
    r = await client.put("Patient/a", json=patient(res_id="b"))
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.id"]


async def test_update_without_id_in_body_is_400(client):
    r = await client.put("Patient/a", json=patient())
    assert r.status_code == 400


async def test_body_type_differs_from_url_type_is_400(client):
    r = await client.post("Observation", json=patient())
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["resourceType"]


async def test_structurally_invalid_resource_is_400_with_expression(client):
    bad = patient()
    bad["birthDate"] = "1990-13-45"
    bad["name"][0]["given"] = "VĂN AN"
    r = await client.post("Patient", json=bad)
    assert r.status_code == 400
    expressions = {e for issue in r.json()["issue"] for e in issue["expression"]}
    assert {"Patient.birthDate", "Patient.name[0].given"} <= expressions


async def test_unknown_element_is_rejected_with_its_path(client):
    r = await client.post("Patient", json={"resourceType": "Patient", "tenKhac": "x"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.tenKhac"]


async def test_malformed_json_is_400(client):
    r = await client.post("Patient", content=b'{"resourceType": "Patient",')
    assert r.status_code == 400
    assert "Malformed JSON" in r.json()["issue"][0]["diagnostics"]


async def test_wrong_media_type_is_415(client):
    r = await client.post("Patient", content=b"NGUYEN VAN AN", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_unsupported_format_requested_is_406(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", headers={"Accept": "text/turtle"})
    assert r.status_code == 406
    r = await client.get(f"Patient/{created['id']}?_format=ttl")
    assert r.status_code == 406


async def test_oversize_body_is_413_and_nothing_is_written(client, app):
    app.state.context.settings = app.state.context.settings.with_(max_body_bytes=2000)
    big = patient()
    big["address"][0]["text"] = "Đường " * 1000
    r = await client.post("Patient", content=orjson.dumps(big))
    assert r.status_code == 413
    history = await client.get("Patient/_history")
    assert history.json()["total"] == 0


async def test_if_match_with_stale_version_is_412(client):
    created = await _create(client)
    ok = await client.put(
        f"Patient/{created['id']}", json=dict(created, gender="female"), headers={"If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200
    stale = await client.put(
        f"Patient/{created['id']}", json=dict(created, gender="other"), headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"


async def test_prefer_return_minimal_sends_no_body(client):
    r = await client.post("Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201
    assert r.content == b""
    assert r.headers["location"]


async def test_prefer_return_operation_outcome(client):
    r = await client.post("Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_delete_then_read_is_410_and_history_keeps_versions(client):
    created = await _create(client)
    r = await client.delete(f"Patient/{created['id']}")
    assert r.status_code == 200
    gone = await client.get(f"Patient/{created['id']}")
    assert gone.status_code == 410
    hist = await client.get(f"Patient/{created['id']}/_history")
    methods = [e["request"]["method"] for e in hist.json()["entry"]]
    assert methods == ["DELETE", "POST"]
    assert (await client.get(f"Patient/{created['id']}/_history/1")).status_code == 200
    assert (await client.get(f"Patient/{created['id']}/_history/2")).status_code == 410


async def test_delete_is_idempotent(client):
    created = await _create(client)
    assert (await client.delete(f"Patient/{created['id']}")).status_code == 200
    assert (await client.delete(f"Patient/{created['id']}")).status_code == 200
    assert (await client.delete("Patient/never-existed")).status_code == 200


async def test_update_after_delete_recreates_with_next_version(client):
    created = await _create(client)
    await client.delete(f"Patient/{created['id']}")
    r = await client.put(f"Patient/{created['id']}", json=created)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


async def test_json_patch_changes_one_element(client):
    created = await _create(client)
    ops = [
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/telecom", "value": [{"system": "phone", "value": "0900000001"}]},
    ]
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "female"
    assert r.json()["meta"]["versionId"] == "2"
    assert r.json()["name"] == created["name"]


async def test_json_patch_producing_invalid_resource_is_400(client):
    created = await _create(client)
    ops = [{"op": "replace", "path": "/birthDate", "value": "15/05/1990"}]
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 400
    assert (await client.get(f"Patient/{created['id']}")).json()["meta"]["versionId"] == "1"


async def test_json_patch_failing_test_op_is_422(client):
    created = await _create(client)
    ops = [{"op": "test", "path": "/gender", "value": "female"}]
    r = await client.patch(f"Patient/{created['id']}", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 422


async def test_conditional_create_returns_existing_match(client):
    headers = {"If-None-Exist": f"identifier={CCCD}|079090001234"}
    first = await client.post("Patient", json=patient(), headers=headers)
    second = await client.post("Patient", json=patient(), headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]


async def test_conditional_update_by_identifier_updates_the_match(client):
    created = await _create(client)
    changed = patient()
    changed["gender"] = "female"
    r = await client.put(f"Patient?identifier={CCCD}|079090001234", json=changed)
    assert r.status_code == 200
    assert r.json()["id"] == created["id"]
    assert r.json()["meta"]["versionId"] == "2"


async def test_conditional_update_without_match_creates(client):
    r = await client.put(f"Patient?identifier={CCCD}|001099012345", json=patient(cccd="001099012345"))
    assert r.status_code == 201


async def test_conditional_update_with_multiple_matches_is_412(client):
    await _create(client, patient(name="LÊ VĂN CƯỜNG"))
    await _create(client, patient(name="LÊ VĂN CƯỜNG"))
    r = await client.put(f"Patient?identifier={CCCD}|079090001234", json=patient())
    assert r.status_code == 412


async def test_conditional_delete_by_identifier(client):
    created = await _create(client)
    r = await client.delete(f"Patient?identifier={CCCD}|079090001234")
    assert r.status_code == 200
    assert (await client.get(f"Patient/{created['id']}")).status_code == 410


async def test_history_type_and_system_with_since_and_count(client):
    for name in ("NGUYỄN VĂN AN", "TRẦN THỊ BÌNH", "LÊ VĂN CƯỜNG"):
        await _create(client, patient(name=name))
    page = await client.get("Patient/_history?_count=2")
    body = page.json()
    assert body["type"] == "history"
    assert len(body["entry"]) == 2
    nxt = next(link["url"] for link in body["link"] if link["relation"] == "next")
    rest = await client.get(nxt)
    assert len(rest.json()["entry"]) == 1
    ids = {e["resource"]["id"] for e in body["entry"] + rest.json()["entry"]}
    assert len(ids) == 3
    system = await client.get("_history")
    assert system.json()["total"] == 3
    future = await client.get("_history?_since=2999-01-01T00:00:00Z")
    assert future.json()["total"] == 0


async def test_history_of_unknown_resource_is_404(client):
    assert (await client.get("Patient/khong-co/_history")).status_code == 404


async def test_capability_statement_lists_interactions(client):
    r = await client.get("metadata")
    cs = r.json()
    assert cs["fhirVersion"] == "4.0.1"
    patient_entry = next(x for x in cs["rest"][0]["resource"] if x["type"] == "Patient")
    codes = {i["code"] for i in patient_entry["interaction"]}
    assert {"read", "vread", "update", "patch", "delete", "create", "history-instance"} <= codes
    assert patient_entry["conditionalDelete"] == "single"
    assert {p["name"] for p in patient_entry["searchParam"]} >= {"_id", "identifier"}


async def test_oversize_search_post_is_413(client, app):
    app.state.context.settings = app.state.context.settings.with_(max_body_bytes=1000)
    r = await client.post(
        "Patient/_search",
        content=b"name=" + b"n" * 5000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


async def test_conditional_update_without_match_onto_an_existing_id_is_409(client):
    await client.put("Patient/taken", json=patient(res_id="taken", cccd="001099000001"))
    body = patient(res_id="taken", cccd="001099000002")
    r = await client.put(f"Patient?identifier={CCCD}|001099000002", json=body)
    assert r.status_code == 409
    assert (await client.get("Patient/taken")).json()["identifier"][0]["value"] == "001099000001"


async def test_conditional_update_without_match_creates_with_the_client_id(client):
    body = patient(res_id="chosen-id", cccd="001099000003")
    r = await client.put(f"Patient?identifier={CCCD}|001099000003", json=body)
    assert r.status_code == 201
    assert r.json()["id"] == "chosen-id"


async def test_post_with_search_parameters_is_refused_not_silently_duplicated(client):
    """Conditional create is If-None-Exist; a query string on POST would otherwise be ignored."""
    await _create(client)
    r = await client.post(f"Patient?identifier={CCCD}|079090001234", json=patient())
    assert r.status_code == 400
    assert "If-None-Exist" in r.json()["issue"][0]["diagnostics"]
    assert (await client.get("Patient", params={"_summary": "count"})).json()["total"] == 1
