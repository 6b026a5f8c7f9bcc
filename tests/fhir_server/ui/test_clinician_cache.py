"""Issue 17: the clinician page's model is cached, and a write by anyone is on the next page, on SQLite and PostgreSQL.

The person is TRẦN THỊ HOA at Chợ Rẫy, Bạch Mai and Bắc Kạn (tests/…/three_hospitals.py).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import UTC, datetime

import orjson

from fhir_server.interactions import bundles
from fhir_server.ui.view import patient_view
from mappings import facilities
from tests.fhir_server.ui import three_hospitals as hoa

NOW = datetime.now(UTC)
NOW_US = int(NOW.timestamp() * 1_000_000)
# Another Lienthong process (an ingest worker, a second server) writing to the same database.
WRITER = """
import sys, orjson
from fhir_server.interactions import bundles
from fhir_server.storage.sql.store import open_store
store = open_store(sys.argv[1])
bundles.transaction(store, orjson.loads(sys.stdin.buffer.read()))
store.close()
"""


def _view(store, **filters):
    return patient_view(store, hoa.MAIN, None, filters, NOW_US)


def _resource(res_id: str) -> dict:
    return copy.deepcopy(next(r for r in hoa.resources(NOW) if r["id"] == res_id))


def _put(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


def _creatinine_values(view: dict) -> list[float]:
    [trend] = [t for t in view["lab_trends"] if t["key"] == "loinc:14682-9"]
    return [p["number"] for p in trend["points"]]


def test_the_record_is_built_once_while_nothing_changes(store):
    hoa.load_and_link(store, NOW)
    first, second = _view(store), _view(store)
    assert second["timeline"][0] is first["timeline"][0]
    uncached = patient_view(store, hoa.MAIN, None, {}, NOW_US, cache_size=0)
    assert uncached["timeline"][0] is not first["timeline"][0]
    assert [v.id for v in uncached["timeline"]] == [v.id for v in first["timeline"]]


def test_a_lab_written_by_another_process_is_on_the_next_page(store, db_url):
    hoa.load_and_link(store, NOW)
    before = _creatinine_values(_view(store))
    lab = _resource("lab-cr-cre")
    lab.update(id="lab-cr-cre-2", effectiveDateTime="2024-03-02T07:00:00+07:00", valueQuantity={"value": 131})
    lab["valueQuantity"]["unit"] = "µmol/L"
    subprocess.run(
        [sys.executable, "-c", WRITER, db_url], input=orjson.dumps(_put(lab)), check=True, timeout=300
    )
    assert sorted(_creatinine_values(_view(store))) == sorted([*before, 131])


def test_an_edited_result_shows_its_new_value(store):
    hoa.load_and_link(store, NOW)
    assert 88 in _creatinine_values(_view(store))
    lab = _resource("lab-cr-cre")
    lab["valueQuantity"]["value"] = 97
    bundles.transaction(store, _put(lab))
    values = _creatinine_values(_view(store))
    assert 97 in values and 88 not in values


def test_a_deleted_allergy_leaves_the_summary(store):
    hoa.load_and_link(store, NOW)
    assert [a["substance"] for a in _view(store)["allergies"]] == ["Penicillin"]
    bundles.transaction(
        store,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "AllergyIntolerance/al-penicillin"}}],
        },
    )
    view = _view(store)
    assert view["allergies"] == [] and not view["allergy_recorded"]


def test_a_hospital_renamed_in_the_facility_registry_is_renamed_on_the_page(store):
    hoa.load_and_link(store, NOW)
    assert "Bệnh viện Bạch Mai" in _view(store)["hospitals"]
    try:
        facilities.merge([facilities.Facility("01001", "Bệnh viện Bạch Mai (cơ sở 2)")])
        assert "Bệnh viện Bạch Mai (cơ sở 2)" in _view(store)["hospitals"]
    finally:
        facilities.clear_department()


def test_filters_and_today_apply_to_a_cached_record(store):
    hoa.load_and_link(store, NOW)
    every = _view(store)
    only_bach_mai = _view(store, hospital="Bệnh viện Bạch Mai")
    assert only_bach_mai["timeline"] is every["timeline"]
    assert {v.hospital for v in only_bach_mai["shown"]} == {"Bệnh viện Bạch Mai"}
    assert len(every["shown"]) > len(only_bach_mai["shown"])
    far_future = patient_view(store, hoa.MAIN, None, {}, NOW_US + 10 * 365 * 86_400_000_000)
    assert every["upcoming"] and not far_future["upcoming"]
    assert every["coverage"]["valid"] and not far_future["coverage"]["valid"]


def test_a_referenced_organization_renamed_by_another_process_is_renamed_on_the_page(store, db_url):
    hoa.load_and_link(store, NOW)
    assert "Bệnh viện Chợ Rẫy" in _view(store)["hospitals"]
    org = _resource("org-cho-ray")
    org["name"] = "Bệnh viện Chợ Rẫy (Trung tâm Ung bướu)"
    subprocess.run(
        [sys.executable, "-c", WRITER, db_url], input=orjson.dumps(_put(org)), check=True, timeout=300
    )
    hospitals = _view(store)["hospitals"]
    assert "Bệnh viện Chợ Rẫy (Trung tâm Ung bướu)" in hospitals and "Bệnh viện Chợ Rẫy" not in hospitals


def test_a_renamed_practitioner_is_the_new_author_of_the_notes(store):
    hoa.load_and_link(store, NOW)
    doctor = _resource("bs-pham-minh-duc")
    doctor["name"] = [{"text": "PHẠM MINH ĐỨC (TS.BS)"}]
    _view(store)
    bundles.transaction(store, _put(doctor))
    page = str(_view(store)["timeline"])
    assert "PHẠM MINH ĐỨC (TS.BS)" in page


def test_the_freshness_summary_counts_exactly_the_rows_the_page_reads(store):
    from fhir_server.operations.everything import everything
    from fhir_server.search.page import CompartmentQuery
    from fhir_server.ui import view_cache
    from fhir_server.ui.view import VIEW_TYPES

    hoa.load_and_link(store, NOW)
    rows = everything(store, hoa.MAIN, CompartmentQuery(types=VIEW_TYPES, members_of_types=True))
    summary = everything(
        store, hoa.MAIN, CompartmentQuery(types=VIEW_TYPES, summary=True, members_of_types=True)
    )
    assert summary.rows == [] and summary.summary is not None and summary.summary[0] == len(rows.rows) > 20
    assert view_cache.fingerprint(summary) == view_cache.fingerprint(rows)


def test_a_changed_record_reparses_only_the_changed_rows(store):
    from fhir_server.ui import view_cache
    from fhir_server.ui.view import PARSED_RESOURCES

    hoa.load_and_link(store, NOW)
    before = _view(store)
    parsed = view_cache.parsed_for(store, PARSED_RESOURCES)
    assert parsed is not None
    loads = parsed.loads
    lab = _resource("lab-cr-cre")
    lab["valueQuantity"]["value"] = 97
    bundles.transaction(store, _put(lab))
    after = _view(store)
    assert after["timeline"][0] is not before["timeline"][0] and 97 in _creatinine_values(after)
    assert parsed.loads == loads + 1


def test_a_deleted_patient_record_is_gone_even_after_a_cached_view(store):
    import pytest

    from fhir_server.errors import FhirError

    hoa.load_and_link(store, NOW)
    _view(store)
    bundles.transaction(
        store,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": f"Patient/{hoa.MAIN}"}}],
        },
    )
    with pytest.raises(FhirError) as gone:
        _view(store)
    assert gone.value.status == 410
    with pytest.raises(FhirError) as missing:
        patient_view(store, "khong-co-benh-nhan-nay", None, {}, NOW_US)
    assert missing.value.status == 404
