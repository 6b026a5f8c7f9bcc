"""`lienthong report`: the same suppressed summaries on the command line, as a table, CSV or XLSX."""

from __future__ import annotations

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from fhir_server.reports.hook import attach_reports
from lienthong.cli import app

from .visits import BINH_DUONG, HA_NOI, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


@pytest.fixture
async def visits(client):
    bundles = [visit_bundle(i, name=NAMES[i], home=BINH_DUONG, icd="J18.9") for i in range(5)]
    bundles += [visit_bundle(10 + i, name=NAMES[i], home=HA_NOI, icd="A91") for i in range(2)]
    for b in bundles:
        assert (await client.post("", json=b)).status_code == 200


def run(*args: str):
    return CliRunner().invoke(app, list(args))


async def test_a_table_by_old_province_with_withheld_cells(visits, db_url):
    r = run("--lang", "en", "report", "show", "visits", "--by", "province-old", "--db", db_url)
    assert r.exit_code == 0, r.output
    # Hà Nội's small count and its partner, Bình Dương's 5 (the total is published elsewhere)
    assert "│ 74           │ <5" in r.output and "│ 01           │ <5" in r.output
    assert "counts below 5 are withheld" in r.output


async def test_top_diagnoses_to_csv_and_xlsx(visits, db_url, tmp_path):
    csv_path = tmp_path / "top.csv"
    r = run(
        "report", "show", "visits", "--by", "icd-code", "--top", "1", "--out", str(csv_path), "--db", db_url
    )
    assert r.exit_code == 0, r.output
    assert csv_path.read_text(encoding="utf-8-sig").splitlines() == ["icd_code,value", "J18.9,5"]
    xlsx = tmp_path / "thang.xlsx"
    r = run(
        "report",
        "show",
        "visits",
        "--by",
        "province-new+month",
        "--min-cell",
        "1",
        "--out",
        str(xlsx),
        "--db",
        db_url,
    )
    assert r.exit_code == 0, r.output
    rows = [[c.value for c in row] for row in load_workbook(xlsx).active.iter_rows()]
    assert rows == [["province_new", "month", "value"], ["01", "2024-05", 2], ["79", "2024-05", 5]]


async def test_rebuild_and_measures(visits, db_url, client):
    r = run("--lang", "vi", "report", "rebuild", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert "đã tổng hợp 7 lượt khám" in r.output
    r = run("report", "measures", "--db", db_url)
    assert r.exit_code == 0, r.output
    measures = (await client.get("/Measure?_count=50")).json()
    ids = {e["resource"]["id"] for e in measures["entry"]}
    assert {"visits", "admissions", "average-length-of-stay", "notifiable-cases"} <= ids


def test_an_unknown_stratifier_is_named(db_url):
    r = run("--lang", "vi", "report", "show", "visits", "--by", "tinh", "--db", db_url)
    assert r.exit_code == 2
    assert "không có tiêu chí phân tầng tinh" in r.output
