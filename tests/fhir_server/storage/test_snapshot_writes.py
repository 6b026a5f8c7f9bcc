"""The re-send rules live in the store: any writer that marks a snapshot's source time gets them."""

from __future__ import annotations

from fhir_server.storage.snapshot import source_time_extension
from tests.fhir_server.vn_data import CCCD, patient

BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"


def _snapshot(when: str | None, phone: str, identifiers: list[dict]) -> dict:
    body = patient(name="PHẠM THỊ THU HƯƠNG", res_id="p-snap")
    body["identifier"] = identifiers
    body["telecom"] = [{"system": "phone", "value": phone}]
    if when:
        body["meta"] = {"extension": [source_time_extension(when)]}
    return body


async def _put(client, body: dict) -> dict:
    r = await client.put("/Patient/p-snap", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


CCCD_ID = {"system": CCCD, "value": "079190001234"}
BHYT_ID = {"system": BHYT, "value": "DN4797900000001"}


async def test_an_older_snapshot_over_the_api_changes_nothing(client):
    await _put(client, _snapshot("2024-03-01T10:00:00+07:00", "0911000222", [CCCD_ID]))
    after = await _put(client, _snapshot("2024-02-01T10:00:00+07:00", "0911000111", [CCCD_ID]))
    assert after["meta"]["versionId"] == "1" and after["telecom"][0]["value"] == "0911000222"


async def test_the_same_data_with_a_later_source_time_is_a_no_op(client):
    await _put(client, _snapshot("2024-03-01T10:00:00+07:00", "0911000222", [CCCD_ID]))
    after = await _put(client, _snapshot("2024-04-01T10:00:00+07:00", "0911000222", [CCCD_ID]))
    assert after["meta"]["versionId"] == "1"


async def test_a_newer_snapshot_keeps_identifiers_it_does_not_mention(client):
    await _put(client, _snapshot("2024-03-01T10:00:00+07:00", "0911000222", [CCCD_ID]))
    after = await _put(client, _snapshot("2024-04-01T10:00:00+07:00", "0911000333", [BHYT_ID]))
    assert after["meta"]["versionId"] == "2" and after["telecom"][0]["value"] == "0911000333"
    assert after["identifier"] == [BHYT_ID, CCCD_ID]


async def test_a_plain_fhir_update_still_replaces_identifiers(client):
    await _put(client, _snapshot("2024-03-01T10:00:00+07:00", "0911000222", [CCCD_ID]))
    after = await _put(client, _snapshot(None, "0911000222", [BHYT_ID]))
    assert after["identifier"] == [BHYT_ID]
