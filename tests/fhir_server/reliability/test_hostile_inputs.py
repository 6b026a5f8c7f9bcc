"""Every hostile input found by hand or by fuzzing (issue 12, item 5) gets a 4xx OperationOutcome that
names the element at fault, never a 500: on SQLite and on PostgreSQL, through the real app."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from tests.fhir_server.vn_data import CCCD, patient

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def _issue(r) -> dict:
    assert r.headers["content-type"].startswith("application/fhir+json"), r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def _dumps(body: object) -> bytes:
    # stdlib json: orjson refuses to write the 800-level bodies these tests need
    return json.dumps(body, ensure_ascii=False).encode()


async def _post(client, path: str, body: object, **kw):
    return await client.post(path, content=_dumps(body), **kw)


def _nested_extension(levels: int) -> dict:
    ext: dict = {"url": "http://example.org/tang", "valueString": "sâu"}
    for _ in range(levels):
        ext = {"url": "http://example.org/tang", "extension": [ext]}
    return ext


def _transaction(entry: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}


@pytest.fixture
async def stored_patient(client) -> str:
    r = await client.put("Patient/bn-an", json=patient(res_id="bn-an"))
    assert r.status_code in (200, 201), r.text
    return "bn-an"


# -- NUL characters --------------------------------------------------------------------------------


async def test_nul_in_a_resource_string_is_400_naming_the_element(client):
    body = patient()
    body["name"][0]["family"] = "NGUY\u0000ỄN"
    r = await _post(client, "Patient", body)
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["Patient.name[0].family"]


@pytest.mark.parametrize("query", ["name=NGUY%00%E1%BB%84N", "identifier=" + CCCD + "%7C0790%0090"])
async def test_nul_in_a_search_value_is_400_naming_the_parameter(client, query):
    r = await client.get(f"Patient?{query}")
    assert r.status_code == 400
    assert _issue(r)["expression"] == [query.split("=")[0]]


async def test_nul_in_an_id_is_404_on_read_and_400_on_delete(client):
    assert (await client.get("Patient/bn%00an")).status_code == 404
    assert (await client.get("Patient/bn%00an/_history/1")).status_code == 404
    r = await client.delete("Patient/bn%00an")
    assert r.status_code == 400 and _issue(r)["code"] == "value"


async def test_nul_in_if_none_exist_is_400(client):
    r = await _post(client, "Patient", patient(), headers={"If-None-Exist": "identifier=079\u0000090"})
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["identifier"]


# -- numbers and sizes beyond the columns ----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "Observation?value-quantity=1e400",
        "RiskAssessment?probability=gt1e400",
        "Observation?value-quantity=-1e309",
    ],
)
async def test_a_number_beyond_double_precision_is_400(client, query):
    r = await client.get(query)
    assert r.status_code == 400
    assert "out of range" in _issue(r)["diagnostics"]


@pytest.mark.parametrize("count", ["-5", "99999999999999999999999", "0"])
async def test_negative_or_huge_count_is_clamped_not_a_500(client, count):
    r = await client.get(f"Patient?_count={count}")
    assert r.status_code == 200
    assert r.json()["resourceType"] == "Bundle"


async def test_history_count_beyond_64_bits_is_clamped_and_negative_refused(client):
    assert (await client.get("Patient/_history?_count=99999999999999999999999")).status_code == 200
    assert (await client.get("Patient/_history?_count=-1")).status_code == 400


async def test_version_id_beyond_64_bits_is_404(client, stored_patient):
    r = await client.get(f"Patient/{stored_patient}/_history/99999999999999999999999")
    assert r.status_code == 404
    assert _issue(r)["code"] == "not-found"


async def test_if_match_beyond_64_bits_is_400(client, stored_patient):
    r = await client.put(
        f"Patient/{stored_patient}",
        json=patient(res_id=stored_patient),
        headers={"If-Match": 'W/"99999999999999999999999"'},
    )
    assert r.status_code == 400


async def test_history_page_token_beyond_64_bits_is_400(client):
    r = await client.get("_history?_page=99999999999999999999999-99999999999999999999999")
    assert r.status_code == 400
    assert _issue(r)["code"] == "value"


async def test_identifier_value_too_long_to_index_is_400_naming_the_element(client):
    body = patient()
    body["identifier"][0]["value"] = "Nguyễn" * 1500  # ~12 KB of UTF-8
    r = await _post(client, "Patient", body)
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["Patient.identifier"]
    assert _issue(r)["code"] == "too-long"


async def test_long_names_are_still_accepted(client):
    body = patient()
    body["name"][0]["text"] = "NGUYỄN VĂN AN " * 700  # strings are indexed cut, not refused
    assert (await _post(client, "Patient", body)).status_code == 201


# -- Bundle entries of the wrong JSON type -----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        (
            {
                "resource": patient(res_id="bn-an"),
                "request": {"method": "PUT", "url": "Patient/bn-an", "ifMatch": {"v": 1}},
            },
            "request.ifMatch",
        ),
        (
            {
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": ["identifier=x"]},
            },
            "request.ifNoneExist",
        ),
        (
            {"fullUrl": {"uuid": 1}, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            "fullUrl",
        ),
        ({"resource": patient(), "request": {"method": "POST", "url": 42}}, "request.url"),
    ],
    ids=["ifMatch-object", "ifNoneExist-array", "fullUrl-object", "url-number"],
)
async def test_transaction_entry_field_of_wrong_type_is_400_naming_it(client, entry, where):
    r = await _post(client, "", _transaction(entry))
    assert r.status_code == 400
    assert f"Bundle.entry[0].{where}" in _issue(r)["expression"]


async def test_batch_entry_with_object_full_url_fails_alone(client):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"fullUrl": {"uuid": 1}, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": patient("TRẦN THỊ BÌNH", "001190000002"),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    r = await _post(client, "", bundle)
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("201")


async def test_binary_data_as_a_number_is_400(client):
    r = await _post(client, "Binary", {"resourceType": "Binary", "contentType": "text/plain", "data": 12345})
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["Binary.data"]


async def test_patch_entry_with_numeric_binary_data_is_400(client, stored_patient):
    entry = {
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": 123},
        "request": {"method": "PATCH", "url": f"Patient/{stored_patient}"},
    }
    r = await _post(client, "", _transaction(entry))
    assert r.status_code == 400
    assert "Bundle.entry[0].resource.data" in _issue(r)["expression"]


async def test_patch_entry_with_valid_binary_still_applies(client, stored_patient):
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    entry = {
        "resource": {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": base64.b64encode(orjson.dumps(ops)).decode(),
        },
        "request": {"method": "PATCH", "url": f"Patient/{stored_patient}"},
    }
    assert (await _post(client, "", _transaction(entry))).status_code == 200


@pytest.mark.parametrize(
    ("ops", "where"),
    [
        ([{"op": "replace", "path": "/name", "value": 5}], "Patient.name"),
        ([{"op": "replace", "path": "/name/0/family", "value": {"x": 1}}], "Patient.name[0].family"),
        ([{"op": "replace", "path": "/birthDate", "value": ["1990"]}], "Patient.birthDate"),
    ],
)
async def test_patch_replace_with_wrong_type_is_400_naming_the_element(client, stored_patient, ops, where):
    r = await client.patch(f"Patient/{stored_patient}", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 400
    assert where in _issue(r)["expression"]


# -- structure the models cannot digest --------------------------------------------------------------


async def test_extensions_nested_400_deep_are_400_not_recursion(client):
    body = patient()
    body["extension"] = [_nested_extension(400)]
    r = await _post(client, "Patient", body)
    assert r.status_code == 400
    assert _issue(r)["code"] == "too-costly"
    assert _issue(r)["expression"][0].startswith("Patient.extension[0].extension[0]")


async def test_extensions_nested_40_deep_are_accepted(client):
    body = patient()
    body["extension"] = [_nested_extension(40)]
    assert (await _post(client, "Patient", body)).status_code == 201


async def test_deep_json_inside_a_transaction_is_400(client):
    body = patient()
    body["extension"] = [_nested_extension(400)]
    r = await _post(
        client, "", _transaction({"resource": body, "request": {"method": "POST", "url": "Patient"}})
    )
    assert r.status_code == 400


async def test_deep_json_patch_value_is_400(client, stored_patient):
    ops = [{"op": "add", "path": "/extension", "value": [_nested_extension(400)]}]
    r = await client.patch(f"Patient/{stored_patient}", content=_dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 400


@pytest.mark.parametrize("kind", ["BenhNhan", 5, None])
async def test_contained_resource_of_unknown_type_is_400_without_echoing_it(client, kind):
    body = patient()
    body["contained"] = [{"resourceType": kind, "id": "c1", "name": "NGUYỄN VĂN AN 079090001234"}]
    r = await _post(client, "Patient", body)
    assert r.status_code == 400
    issue = _issue(r)
    assert issue["expression"] == ["Patient.contained[0].resourceType"]
    assert "079090001234" not in r.text


# -- Lienthong's own endpoints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ingest/dead-letters?offset=9223372036854775808",
        "/ingest/dead-letters?limit=-1",
        "/ingest/dead-letters?status=%00",
        "/ingest/inbox/99999999999999999999",
        "/fhir/identity/review?limit=-5",
    ],
)
async def test_out_of_range_paging_and_ids_on_own_endpoints_are_400(client, path):
    r = await client.get("http://test" + path)
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
