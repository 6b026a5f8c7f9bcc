"""OperationOutcome diagnostics follow Accept-Language: Vietnamese on request, English by default."""

from __future__ import annotations

import orjson

from tests.fhir_server.vn_data import patient

VI = {"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"}


async def test_not_found_in_vietnamese_and_english(client):
    vi = await client.get("Patient/khong-co", headers=VI)
    en = await client.get("Patient/khong-co")
    assert vi.status_code == en.status_code == 404
    assert vi.json()["issue"][0]["diagnostics"] == "Không tìm thấy Patient/khong-co"
    assert en.json()["issue"][0]["diagnostics"] == "Patient/khong-co not found"
    assert vi.json()["issue"][0]["code"] == en.json()["issue"][0]["code"] == "not-found"


async def test_gone_after_delete_in_vietnamese(client):
    created = (await client.post("Patient", json=patient())).json()
    await client.delete(f"Patient/{created['id']}")
    r = await client.get(f"Patient/{created['id']}", headers=VI)
    assert r.status_code == 410
    assert r.json()["issue"][0]["diagnostics"] == f"Patient/{created['id']} đã bị xoá"
    assert r.headers["ETag"]


async def test_malformed_json_in_vietnamese(client):
    r = await client.post("Patient", content=b'{"resourceType": "Patient",', headers=VI)
    assert r.status_code == 400
    assert r.json()["issue"][0]["diagnostics"].startswith("JSON sai cú pháp: ")


async def test_unknown_resource_type_in_vietnamese(client):
    r = await client.post("BenhNhan", json={"resourceType": "BenhNhan"}, headers=VI)
    assert r.status_code in (400, 404)
    assert "không có trong FHIR R4" in r.json()["issue"][0]["diagnostics"]


async def test_unsupported_media_type_in_vietnamese(client):
    r = await client.post("Patient", content=b"NGUYEN VAN AN", headers={**VI, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["issue"][0]["diagnostics"].startswith(
        "Không hỗ trợ Content-Type 'text/plain'; cần một trong"
    )


async def test_body_too_large_in_vietnamese(client, app):
    app.state.context.settings = app.state.context.settings.with_(max_body_bytes=500)
    big = patient()
    big["address"][0]["text"] = "Đường Lê Lợi " * 100
    r = await client.post("Patient", content=orjson.dumps(big), headers=VI)
    assert r.status_code == 413
    assert "vượt giới hạn 500 byte" in r.json()["issue"][0]["diagnostics"]


async def test_stale_if_match_in_vietnamese(client):
    created = (await client.post("Patient", json=patient())).json()
    await client.put(f"Patient/{created['id']}", json=dict(created, gender="female"))
    r = await client.put(
        f"Patient/{created['id']}",
        json=dict(created, gender="other"),
        headers={**VI, "If-Match": 'W/"1"'},
    )
    assert r.status_code == 412
    assert r.json()["issue"][0]["diagnostics"] == (
        f"Phiên bản If-Match 1 không khớp với phiên bản hiện tại 2 của Patient/{created['id']}"
    )


async def test_unknown_search_parameter_with_strict_handling_in_vietnamese(client):
    r = await client.get("Patient?ten-sai=An", headers={**VI, "Prefer": "handling=strict"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["diagnostics"] == "tham số tìm kiếm 'ten-sai' không xác định đối với Patient"


async def test_unknown_route_in_vietnamese(client):
    r = await client.get("http://test/khong-co-duong-dan", headers=VI)
    assert r.status_code == 404
    assert r.json()["issue"][0]["diagnostics"] == "Không tìm thấy"
