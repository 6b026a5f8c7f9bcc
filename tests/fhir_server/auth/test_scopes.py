"""SMART scopes (v1 and v2) enforced on every interaction: what each kind of token may and may not do."""

from __future__ import annotations

import pytest

from fhir_server.auth.scopes import ScopePolicy, parse_scope
from tests.fhir_server.auth.helpers import bearer
from tests.fhir_server.vn_data import patient


def test_v1_read_means_read_and_search():
    assert parse_scope("system/Patient.read").actions == frozenset("rs")


def test_v2_letters_are_the_actions():
    assert parse_scope("user/*.cruds").actions == frozenset("cruds")


@pytest.mark.parametrize(
    "scope", ["system/Patient.sr", "openid", "patient/Observation.rs?category=laboratory", "system/Patient"]
)
def test_out_of_order_unknown_and_granular_scopes_grant_nothing(scope):
    assert parse_scope(scope) is None


def test_patient_scopes_without_patient_claim_grant_nothing():
    assert not ScopePolicy.parse({"patient/*.rs"}).has_any()


async def test_read_scope_reads_its_type(secured, records):
    r = await secured.get("Patient/an", headers=bearer("system/Patient.read"))
    assert r.status_code == 200
    assert r.json()["name"][0]["text"] == "NGUYỄN VĂN AN"


async def test_v2_read_scope_reads_its_type(secured, records):
    assert (await secured.get("Patient/an", headers=bearer("system/Patient.rs"))).status_code == 200


async def test_type_scope_does_not_cover_other_types(secured, records):
    assert (await secured.get("Observation/obs-an", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_read_only_token_cannot_create(secured):
    r = await secured.post("Patient", json=patient(), headers=bearer("system/Patient.read"))
    assert r.status_code == 403
    assert r.json()["issue"][0]["code"] == "forbidden"


async def test_v2_create_scope_creates(secured):
    assert (
        await secured.post("Patient", json=patient(), headers=bearer("system/Patient.c"))
    ).status_code == 201


async def test_create_scope_does_not_allow_delete(secured, records):
    assert (await secured.delete("Patient/an", headers=bearer("system/Patient.c"))).status_code == 403


async def test_system_search_without_type_needs_a_wildcard_scope(secured, records):
    assert (await secured.get("", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_system_search_with_readable_type_is_allowed(secured, records):
    assert (await secured.get("?_type=Patient", headers=bearer("system/Patient.rs"))).status_code == 200


async def test_system_history_needs_a_wildcard_scope(secured, records):
    assert (await secured.get("_history", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_type_history_of_an_unreadable_type_is_403(secured, records):
    assert (await secured.get("Observation/_history", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_dead_letters_need_a_wildcard_read_scope(secured):
    assert (
        await secured.get("http://test/ingest/dead-letters", headers=bearer("system/Patient.rs"))
    ).status_code == 403


async def test_ingest_needs_a_wildcard_write_scope(secured):
    r = await secured.post(
        "http://test/ingest/qd130", content=b"<GIAMDINHHS/>", headers=bearer("system/Patient.cud")
    )
    assert r.status_code == 403


async def test_identity_review_queue_needs_a_wildcard_scope(secured):
    assert (await secured.get("identity/review", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_clinician_view_needs_a_wildcard_read_scope(secured):
    assert (await secured.get("http://test/ui", headers=bearer("system/Patient.rs"))).status_code == 403


async def test_ingest_with_a_wildcard_write_scope_reaches_the_adapter(secured):
    r = await secured.post(
        "http://test/ingest/qd130",
        content="<GIAMDINHHS><THONGTINDONVI><MACSKCB>79001</MACSKCB></THONGTINDONVI></GIAMDINHHS>".encode(),
        headers={**bearer("system/*.cruds"), "Content-Type": "application/xml"},
    )
    assert r.status_code not in (401, 403)
    assert r.status_code < 500
