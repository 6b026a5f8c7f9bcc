"""Complementary suppression (issue 14): with the totals published, no withheld count can be recovered by
subtraction — checked on real-shaped tables by constructing, for every withheld cell, another table with
the same published cells and totals in which that cell differs."""

from __future__ import annotations

import random

import pytest

from fhir_server.reports.hook import attach_reports
from fhir_server.reports.summary import _suppress
from fhir_server.reports.suppression import complement, disclosed

from .visits import BINH_DUONG, HA_NOI, visit_bundle

MIN = 5
# Visits in one month by (new province, visit class): a large city, a mid-size and two small provinces.
VISITS = {
    ("79", "outpatient"): 412,
    ("79", "inpatient"): 57,
    ("79", "emergency"): 3,
    ("01", "outpatient"): 318,
    ("01", "inpatient"): 41,
    ("01", "emergency"): 12,
    ("48", "outpatient"): 26,
    ("48", "inpatient"): 6,
    ("48", "emergency"): 2,
    ("92", "outpatient"): 9,
    ("92", "inpatient"): 7,
}


def _published(table: dict[tuple, int]) -> list[dict]:
    rows = [{"province_new": p, "visit_class": c, "value": _suppress(v, MIN)} for (p, c), v in table.items()]
    return complement(rows, ["province_new", "visit_class"])


def _alternative(rows: list[dict], cell: int) -> list[int] | None:
    """Withheld cells (indexes) of a cycle row-column-row… through `cell`: adding +1/-1 alternately
    along it keeps every row and column total, so the cell's value is not determined."""
    hidden = [i for i, r in enumerate(rows) if r["value"] is None]
    target = rows[cell]
    # Path from the cell's column back to its row through other withheld cells (alternating axes).
    start, goal = ("c", target["visit_class"]), ("r", target["province_new"])
    frontier, seen = [(start, [cell])], {start}
    while frontier:
        node, path = frontier.pop()
        for i in hidden:
            if i in path:
                continue
            r = rows[i]
            ends = (("r", r["province_new"]), ("c", r["visit_class"]))
            if node not in ends:
                continue
            other = ends[1] if ends[0] == node else ends[0]
            if other == goal:
                return [*path, i]
            if other not in seen:
                seen.add(other)
                frontier.append((other, [*path, i]))
    return None


def test_a_one_way_table_with_its_total_withholds_a_second_cell():
    rows = [
        {"province_new": p, "value": _suppress(v, MIN)}
        for p, v in (("79", 40), ("01", 12), ("48", 7), ("92", 3))
    ]
    out = complement(rows, ["province_new"])
    assert [r["value"] for r in out] == [40, 12, None, None]


def test_no_withheld_cell_of_a_two_way_table_follows_from_the_margins():
    out = _published(VISITS)
    hidden = [i for i, r in enumerate(out) if r["value"] is None]
    assert len(hidden) > 3  # the three primary cells and their partners
    for i in hidden:
        cycle = _alternative(out, i)
        assert cycle is not None, out[i]
        values = [VISITS[(out[j]["province_new"], out[j]["visit_class"])] for j in cycle]
        shifted = [v + (1 if k % 2 == 0 else -1) for k, v in enumerate(values)]
        assert min(shifted) >= 0 and shifted[0] != values[0]
    assert disclosed(out, ["province_new", "visit_class"]) == []


def test_a_bridge_between_two_blocks_of_withheld_cells_is_broken():
    # Two 2x2 blocks of small cells joined by one small cell: the line rule alone leaves the bridge
    # determined (sum of one block's rows minus its columns); the audit gives it a partner.
    table = {
        ("79", "outpatient"): 2,
        ("79", "inpatient"): 3,
        ("01", "outpatient"): 4,
        ("01", "inpatient"): 1,
        ("48", "emergency"): 2,
        ("48", "newborn"): 3,
        ("92", "emergency"): 4,
        ("92", "newborn"): 1,
        ("01", "emergency"): 2,
        ("79", "emergency"): 30,
        ("79", "newborn"): 20,
        ("01", "newborn"): 25,
        ("48", "outpatient"): 40,
        ("48", "inpatient"): 60,
        ("92", "outpatient"): 50,
        ("92", "inpatient"): 70,
    }
    out = _published(table)
    assert disclosed(out, ["province_new", "visit_class"]) == []
    assert all(_alternative(out, i) is not None for i, r in enumerate(out) if r["value"] is None)


def test_a_table_without_small_cells_is_published_whole():
    table = {k: v for k, v in VISITS.items() if v >= MIN}
    assert all(r["value"] is not None for r in _published(table))


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


async def test_the_measure_report_strata_withhold_the_partner_cell(client):
    bundles = [visit_bundle(i, name=f"Bệnh nhân {i}", home=BINH_DUONG) for i in range(6)]
    bundles += [visit_bundle(40, name="Đặng Thị Mai", home=HA_NOI)]
    for b in bundles:
        assert (await client.post("", json=b)).status_code == 200
    r = await client.get("/Measure/visits/$evaluate-measure", params={"stratifier": "province-new"})
    group = r.json()["group"][0]
    strata = {s["value"]["text"]: s["population"][0].get("count") for s in group["stratifier"][0]["stratum"]}
    # The total 7 is published: with 79's 6 shown, Hà Nội's single visit would be 7 − 6.
    assert group["population"][0]["count"] == 7
    assert strata == {"01": None, "79": None}


def test_the_bridge_search_agrees_with_exact_elimination():
    from fhir_server.reports.suppression import _bridges, _linear

    dims = ["province_new", "visit_class"]
    for seed in range(20):
        rnd = random.Random(seed)
        rows = [
            {
                "province_new": f"{p:02d}",
                "visit_class": c,
                "value": _suppress(rnd.choice([1, 2, 3, 8, 40]), MIN),
            }
            for p in range(8)
            for c in ("outpatient", "inpatient", "emergency", "newborn", "day-case")
            if rnd.random() < 0.8
        ]
        hidden = [i for i, r in enumerate(rows) if r["value"] is None]
        assert sorted(_bridges(rows, dims, hidden)) == sorted(_linear(rows, dims, hidden)), seed
