"""The province-month rollup answers what the visit facts would: kept by deltas through corrections and
deletions, equal to a recomputation from the facts."""

from __future__ import annotations

import pytest

from fhir_server.reports.hook import attach_reports

from .visits import BINH_DUONG, HA_NOI, HO_CHI_MINH, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]
MEASURES = ["visits", "admissions", "discharges", "bed_days", "los_count", "referrals_in"]


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


async def _send(client, *bundles):
    for bundle in bundles:
        r = await client.post("", json=bundle)
        assert r.status_code == 200, r.text


def _province_month(store) -> list[dict]:
    return store.reports.aggregate(["province_old", "province_new", "month"], MEASURES)


async def test_a_visit_corrected_to_another_month_and_class_moves_between_cells(client, store):
    await _send(client, *[visit_bundle(i, name=NAMES[i], home=BINH_DUONG) for i in range(3)])
    # visit 0 was really an inpatient stay in June, referred in; the hospital re-sends it
    corrected = visit_bundle(
        0,
        name=NAMES[0],
        home=BINH_DUONG,
        cls="IMP",
        start="2024-06-01",
        end="2024-06-05",
        referred_from="74001",
    )
    await _send(client, corrected)
    rows = {(r["month"], r["province_old"]): r for r in _province_month(store)}
    assert rows[("2024-05", "74")]["visits"] == 2 and rows[("2024-05", "74")]["admissions"] == 0
    june = rows[("2024-06", "74")]
    assert (june["visits"], june["admissions"], june["bed_days"], june["referrals_in"]) == (1, 1, 5, 1)


async def test_a_deleted_visit_leaves_no_empty_cell(client, store):
    await _send(client, visit_bundle(1, home=HA_NOI), visit_bundle(2, home=HO_CHI_MINH))
    assert (await client.delete("/Encounter/lk-1")).status_code in (200, 204)
    assert [(r["province_old"], r["visits"]) for r in _province_month(store)] == [("79", 1)]


async def test_the_kept_rollup_equals_one_recomputed_from_the_facts(client, store):
    bundles = [visit_bundle(i, name=NAMES[i % 6], home=(BINH_DUONG, HA_NOI)[i % 2]) for i in range(8)]
    await _send(client, *bundles)
    await _send(client, visit_bundle(3, home=HO_CHI_MINH, start="2024-07-02", cls="EMER"))  # patient moved
    assert (await client.delete("/Encounter/lk-5")).status_code in (200, 204)
    kept = _province_month(store)
    store.reports.rebuild_rollup()
    assert _province_month(store) == kept
    assert sum(r["visits"] for r in kept) == 7
