"""Bounded work per request (issue 12, item 6): past each configured bound the server answers 400
too-costly naming the parameter, before doing the work; at the bound it answers normally."""

from __future__ import annotations

import httpx
import orjson
import pytest

from fhir_server.settings import Settings
from lienthong.app import create_app


def _issue(r) -> dict:
    return r.json()["issue"][0]


SORT_KEYS = ["family", "-birthdate", "given", "gender", "name", "_id", "-_lastUpdated", "address-city"]


@pytest.mark.parametrize("keys", [1, 8])
async def test_sort_with_up_to_eight_keys_is_answered(client, keys):
    r = await client.get("Patient?_sort=" + ",".join(SORT_KEYS[:keys]))
    assert r.status_code == 200


async def test_sort_with_nine_keys_is_too_costly(client):
    r = await client.get("Patient?_sort=" + ",".join(["family", "-birthdate", "given"] * 3))
    assert r.status_code == 400
    assert _issue(r)["code"] == "too-costly" and _issue(r)["expression"] == ["_sort"]


async def test_nine_chained_parameters_are_too_costly(client):
    query = "&".join(f"subject:Patient.name=Nguyễn{i}" for i in range(9))
    r = await client.get(f"Observation?{query}")
    assert r.status_code == 400 and _issue(r)["code"] == "too-costly"


async def test_two_hundred_has_parameters_are_too_costly(client):
    query = "&".join(f"_has:Observation:patient:code={i}" for i in range(200))
    r = await client.get(f"Patient?{query}")
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["_has:Observation:patient:code"]


async def test_a_chain_four_links_deep_is_too_costly(client):
    r = await client.get("Observation?subject:Patient.organization.partof.partof.name=Bạch Mai")
    assert r.status_code == 400
    assert "4 levels" in _issue(r)["diagnostics"]


async def test_nested_has_four_levels_deep_is_too_costly(client):
    name = "_has:Observation:patient:" * 4 + "code"
    r = await client.get(f"Patient?{name}=1234")
    assert r.status_code == 400 and _issue(r)["code"] == "too-costly"


async def test_a_chain_three_links_deep_is_answered(client):
    r = await client.get("Observation?subject:Patient.organization.partof.name=Bạch Mai")
    assert r.status_code == 200


def _batch(n: int) -> bytes:
    entry = {"request": {"method": "GET", "url": "Patient?name=Nguyễn"}}
    return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [entry] * n})


async def test_batch_over_the_entry_bound_is_refused_before_any_work(client):
    r = await client.post("", content=_batch(10_001))
    assert r.status_code == 400
    assert _issue(r)["code"] == "too-costly" and _issue(r)["expression"] == ["Bundle.entry"]


async def test_bounds_are_configurable(settings, store):
    tight = Settings(
        database_url=settings.database_url, max_bundle_entries=3, max_sort_keys=1, max_json_depth=10
    )
    app = create_app(tight, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/fhir",
        headers={"Content-Type": "application/fhir+json"},
    ) as client:
        assert (await client.post("", content=_batch(3))).status_code == 200
        assert (await client.post("", content=_batch(4))).status_code == 400
        assert (await client.get("Patient?_sort=name")).status_code == 200
        assert (await client.get("Patient?_sort=name,birthdate")).status_code == 400
        deep: dict = {"url": "http://example.org/tang", "valueString": "sâu"}
        for _ in range(5):
            deep = {"url": "http://example.org/tang", "extension": [deep]}
        r = await client.post(
            "Patient", content=orjson.dumps({"resourceType": "Patient", "extension": [deep]})
        )
        assert r.status_code == 400 and _issue(r)["code"] == "too-costly"
