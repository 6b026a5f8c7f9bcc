"""transaction and batch Bundles: reference resolution, processing order, atomic rollback."""

from __future__ import annotations

import base64

import orjson

from fhir_server.interactions import bundles
from fhir_server.interactions.group import commit_group
from tests.fhir_server.vn_data import CCCD, observation, patient


def tx(*entries: dict, kind: str = "transaction") -> dict:
    """A Bundle of the given entries."""
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict, full_url: str | None = None, if_none_exist: str | None = None) -> dict:
    """A POST entry."""
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_none_exist:
        entry["request"]["ifNoneExist"] = if_none_exist
    return entry


def put(resource: dict, url: str | None = None) -> dict:
    """A PUT entry."""
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": url or f"{resource['resourceType']}/{resource['id']}"},
    }


async def test_urn_uuid_references_resolve_to_assigned_ids(client):
    bundle = tx(
        post(patient(), "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"),
        post(observation("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    patient_loc, obs_loc = (e["response"]["location"] for e in out["entry"])
    assert all(e["response"]["status"].startswith("201") for e in out["entry"])
    obs = (await client.get(obs_loc.rsplit("/_history", 1)[0])).json()
    assert obs["subject"]["reference"] == patient_loc.rsplit("/_history", 1)[0]


async def test_response_entries_follow_request_order_even_though_deletes_run_first(client):
    await client.put("Patient/p-old", json=patient(res_id="p-old"))
    bundle = tx(put(patient(res_id="p-new")), {"request": {"method": "DELETE", "url": "Patient/p-old"}})
    out = (await client.post("", json=bundle)).json()
    assert out["entry"][0]["response"]["status"].startswith("201")
    assert out["entry"][1]["response"]["status"].startswith("200")
    assert (await client.get("Patient/p-old")).status_code == 410


async def test_failing_entry_rolls_back_the_whole_transaction_and_is_named(client):
    bad = observation("Patient/x")
    bad["status"] = 7
    bundle = tx(put(patient(res_id="p-rollback")), post(bad))
    r = await client.post("", json=bundle)
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["diagnostics"].startswith("Bundle.entry[1]")
    assert "Bundle.entry[1]" in issue["expression"]
    assert (await client.get("Patient/p-rollback")).status_code == 404


async def test_if_match_conflict_inside_transaction_rolls_back(client):
    await client.put("Patient/p1", json=patient(res_id="p1"))
    changed = dict(patient(res_id="p1"), gender="female")
    bundle = tx(
        put(patient(res_id="p2")),
        {"resource": changed, "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 'W/"7"'}},
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 412
    assert (await client.get("Patient/p2")).status_code == 404


async def test_two_entries_modifying_the_same_resource_are_rejected(client):
    r = await client.post("", json=tx(put(patient(res_id="dup")), put(patient(res_id="dup"))))
    assert r.status_code == 400


async def test_conditional_create_inside_transaction_reuses_existing_patient(client):
    first = await client.post("Patient", json=patient())
    pid = first.json()["id"]
    bundle = tx(
        post(patient(), "urn:uuid:p", if_none_exist=f"identifier={CCCD}|079090001234"),
        post(observation("urn:uuid:p")),
    )
    out = (await client.post("", json=bundle)).json()
    assert out["entry"][0]["response"]["status"].startswith("200")
    obs_url = out["entry"][1]["response"]["location"].rsplit("/_history", 1)[0]
    assert (await client.get(obs_url)).json()["subject"]["reference"] == f"Patient/{pid}"


async def test_conditional_reference_resolves_by_identifier(client):
    pid = (await client.post("Patient", json=patient())).json()["id"]
    bundle = tx(post(observation(f"Patient?identifier={CCCD}|079090001234")))
    out = (await client.post("", json=bundle)).json()
    obs_url = out["entry"][0]["response"]["location"].rsplit("/_history", 1)[0]
    assert (await client.get(obs_url)).json()["subject"]["reference"] == f"Patient/{pid}"


async def test_get_entries_see_the_transactions_own_writes(client):
    bundle = tx({"request": {"method": "GET", "url": "Patient/seen"}}, put(patient(res_id="seen")))
    out = (await client.post("", json=bundle, headers={"Prefer": "return=representation"})).json()
    assert out["entry"][0]["response"]["status"].startswith("200")
    assert out["entry"][1]["resource"]["id"] == "seen"


async def test_patch_entry_with_binary_json_patch(client):
    await client.put("Patient/patched", json=patient(res_id="patched"))
    ops = base64.b64encode(orjson.dumps([{"op": "replace", "path": "/gender", "value": "female"}])).decode()
    bundle = tx(
        {
            "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": ops},
            "request": {"method": "PATCH", "url": "Patient/patched"},
        }
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    assert (await client.get("Patient/patched")).json()["gender"] == "female"


async def test_resending_the_same_transaction_is_idempotent(client):
    bundle = tx(put(patient(res_id="same")), put(observation("Patient/same", res_id="same-obs")))
    await client.post("", json=bundle)
    again = (await client.post("", json=bundle)).json()
    assert [e["response"]["etag"] for e in again["entry"]] == ['W/"1"', 'W/"1"']


async def test_batch_entries_succeed_or_fail_independently(client):
    bad = patient(res_id="bad")
    bad["birthDate"] = "không rõ"
    bundle = tx(
        put(patient(res_id="good")),
        put(bad),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        kind="batch",
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200
    statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
    assert statuses == ["201", "400", "404"]
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert (await client.get("Patient/good")).status_code == 200


async def test_bundle_of_wrong_type_is_400(client):
    r = await client.post("", json=tx(kind="collection"))
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.type"]


async def test_store_transaction_is_the_adapters_one_call_write(store):
    out = bundles.transaction(
        store, tx(put(patient(res_id="adapter-p")), put(observation("Patient/adapter-p", res_id="o")))
    )
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created", "201 Created"]
    assert store.read("Observation", "o").as_dict()["subject"]["reference"] == "Patient/adapter-p"


def test_group_commit_keeps_each_bundle_atomic(store):
    bad = observation("Patient/g1", res_id="g-bad")
    bad["status"] = 7
    results = commit_group(
        store,
        [
            tx(put(patient(res_id="g1")), put(observation("Patient/g1", res_id="g-obs"))),
            tx(put(patient(res_id="g2")), put(bad)),
            tx(put(patient(res_id="g3"))),
        ],
    )
    assert results[0]["type"] == "transaction-response"
    assert results[1].status == 400 and "Bundle.entry[1]" in results[1].diagnostics
    assert results[2]["type"] == "transaction-response"
    assert store.read("Patient", "g2") is None
    assert {store.read("Patient", i).version for i in ("g1", "g3")} == {1}
    assert store.read("Observation", "g-obs").as_dict()["subject"]["reference"] == "Patient/g1"


def test_group_commit_later_bundle_sees_earlier_bundles_writes(store):
    first = patient(res_id="seq")
    second = dict(patient(res_id="seq"), gender="female")
    commit_group(store, [tx(put(first)), tx(put(second))])
    current = store.read("Patient", "seq")
    assert current.version == 2
    assert current.as_dict()["gender"] == "female"
    assert [h.stored.version for h in store.history("Patient", "seq")] == [2, 1]


async def test_search_entry_in_a_batch_returns_a_searchset(client):
    await client.put("Patient/tim-kiem", json=patient(res_id="tim-kiem", cccd="001099000009"))
    bundle = tx(
        {"request": {"method": "GET", "url": f"Patient?identifier={CCCD}|001099000009"}}, kind="batch"
    )
    out = (await client.post("", json=bundle)).json()
    found = out["entry"][0]["resource"]
    assert out["entry"][0]["response"]["status"].startswith("200")
    assert found["type"] == "searchset"
    assert [e["resource"]["id"] for e in found["entry"]] == ["tim-kiem"]
    assert found["entry"][0]["fullUrl"] == "http://test/fhir/Patient/tim-kiem"


async def test_search_entry_in_a_transaction_sees_the_transactions_writes(client):
    bundle = tx(
        put(patient(res_id="vua-tao", cccd="001099000010")),
        {"request": {"method": "GET", "url": f"Patient?identifier={CCCD}|001099000010"}},
    )
    out = (await client.post("", json=bundle)).json()
    assert [e["resource"]["id"] for e in out["entry"][1]["resource"]["entry"]] == ["vua-tao"]
