"""fhirpy (pinned in the test extra) used as a hospital integrator would, against a real uvicorn server:
create, search and paging, merge patch, save(fields=…), refresh, conditional update/patch/delete."""

from __future__ import annotations

import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

from tests.fhir_server.vn_data import CCCD

HOSPITAL = "http://benhvien.vn/sid/ma-benh-nhan"
# fhirpy 2.3.1 warns on every SearchSet.patch() call, even in the keyword form it recommends.
pytestmark = pytest.mark.filterwarnings("ignore:The first arg of method patch:DeprecationWarning")


def _client(base: str) -> AsyncFHIRClient:
    return AsyncFHIRClient(base)


async def _patient(client: AsyncFHIRClient, mrn: str, family: str, *given: str):
    pat = client.resource(
        "Patient",
        identifier=[{"system": HOSPITAL, "value": mrn}, {"system": CCCD, "value": f"0790900{mrn}"}],
        name=[{"family": family, "given": list(given), "text": " ".join((family, *given))}],
        gender="male",
        birthDate="1978-09-02",
    )
    await pat.create()
    return pat


async def test_create_search_and_follow_pages(live_server):
    client = _client(live_server)
    for i in range(5):
        await _patient(client, f"BN{i:04d}", "NGUYỄN", "VĂN", f"SỐ{i}")
    found = await client.resources("Patient").search(family="NGUYỄN").limit(2).fetch_all()
    assert len(found) == 5
    assert len({p.id for p in found}) == 5
    assert await client.resources("Patient").search(identifier=f"{HOSPITAL}|BN0003").count() == 1


async def test_patch_sends_a_merge_patch(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0100", "TRẦN", "THỊ", "BÌNH")
    await pat.patch(gender="female", telecom=[{"system": "phone", "value": "0912345678"}])
    fetched = await client.reference("Patient", pat.id).to_resource()
    assert fetched["gender"] == "female"
    assert fetched["telecom"][0]["value"] == "0912345678"
    assert fetched["name"][0]["family"] == "TRẦN"
    assert fetched["meta"]["versionId"] == "2"


async def test_client_patch_with_null_removes_an_element(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0101", "LÊ", "VĂN", "CƯỜNG")
    patched = await client.patch("Patient", pat.id, birthDate=None, active=True)
    assert "birthDate" not in patched
    assert patched["active"] is True


async def test_save_with_fields_only_changes_those_fields(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0102", "PHẠM", "THỊ", "DUNG")
    pat["gender"] = "female"
    pat["birthDate"] = "2000-01-01"  # changed locally but not listed: must not be sent
    await pat.save(fields=["gender"])
    fetched = await client.reference("Patient", pat.id).to_resource()
    assert fetched["gender"] == "female"
    assert fetched["birthDate"] == "1978-09-02"


async def test_refresh_of_an_unchanged_resource_is_not_modified(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0103", "HOÀNG", "VĂN", "EM")
    await pat.refresh()  # If-None-Match: 1 -> 304, the local copy is kept
    assert pat["meta"]["versionId"] == "1"
    await client.patch("Patient", pat.id, active=False)
    await pat.refresh()
    assert pat["meta"]["versionId"] == "2"
    assert pat["active"] is False


async def test_conditional_patch_through_a_searchset(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0104", "VÕ", "THỊ", "GIANG")
    search = client.resources("Patient").search(identifier=f"{HOSPITAL}|BN0104")
    patched = await search.patch(gender="female")
    assert patched.id == pat.id
    assert patched["gender"] == "female"
    with pytest.raises(ResourceNotFound):
        await client.resources("Patient").search(identifier=f"{HOSPITAL}|KHONG-CO").patch(active=True)


async def test_conditional_update_through_a_searchset(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0105", "ĐỖ", "VĂN", "HÙNG")
    search = client.resources("Patient").search(identifier=f"{HOSPITAL}|BN0105")
    body = client.resource(
        "Patient",
        identifier=[{"system": HOSPITAL, "value": "BN0105"}],
        name=[{"family": "ĐỖ", "given": ["VĂN", "HÙNG"]}],
        gender="male",
        active=True,
    )
    updated, created = await search.update(body)
    assert not created
    assert updated.id == pat.id and updated["active"] is True


async def test_conditional_delete_statuses(live_server):
    client = _client(live_server)
    _, status = await client.resources("Patient").search(identifier=f"{HOSPITAL}|KHONG-CO").delete()
    assert status == 204
    pat = await _patient(client, "BN0106", "NGÔ", "THỊ", "HOA")
    _, status = await client.resources("Patient").search(identifier=f"{HOSPITAL}|BN0106").delete()
    assert status == 200
    with pytest.raises(ResourceNotFound):
        await client.reference("Patient", pat.id).to_resource()


async def test_conditional_operations_with_several_matches_raise(live_server):
    client = _client(live_server)
    await _patient(client, "BN0107", "LÝ", "VĂN", "TÂM")
    await _patient(client, "BN0108", "LÝ", "THỊ", "THU")
    with pytest.raises(MultipleResourcesFound):
        await client.resources("Patient").search(family="LÝ").delete()
    with pytest.raises(MultipleResourcesFound):
        await client.resources("Patient").search(family="LÝ").patch(active=True)


async def test_delete_then_read_is_not_found(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0109", "BÙI", "VĂN", "KHÁNH")
    await pat.delete()
    with pytest.raises(ResourceNotFound):
        await client.reference("Patient", pat.id).to_resource()


async def test_lastn_through_execute(live_server):
    client = _client(live_server)
    pat = await _patient(client, "BN0110", "ĐẶNG", "THỊ", "MAI")
    for day, value in (("01", 5.2), ("03", 6.8), ("02", 5.9)):
        await client.resource(
            "Observation",
            status="final",
            code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "Đường huyết"},
            subject={"reference": f"Patient/{pat.id}"},
            effectiveDateTime=f"2026-11-{day}T07:00:00+07:00",
            valueQuantity={"value": value, "unit": "mmol/L"},
        ).create()
    bundle = await client.execute("Observation/$lastn", method="get", params={"patient": pat.id, "max": 2})
    assert [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]] == [6.8, 5.9]
