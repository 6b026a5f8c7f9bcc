"""/ui/reports: bar chart by province (old or new boundaries) and monthly trends, drawn on the server."""

from __future__ import annotations

import pytest

from fhir_server.reports.hook import attach_reports

from .visits import BINH_DUONG, HA_NOI, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


@pytest.fixture
async def visits(client):
    bundles = [
        visit_bundle(i, name=NAMES[i], home=BINH_DUONG, start=f"2024-0{1 + i % 2}-10") for i in range(6)
    ]
    bundles += [visit_bundle(10 + i, name=NAMES[i], home=HA_NOI, icd="A91") for i in range(2)]
    for b in bundles:
        assert (await client.post("", json=b)).status_code == 200


async def test_new_boundaries_show_the_merged_province_and_withhold_small_ones(visits, client):
    r = await client.get("http://test/ui/reports")
    assert r.status_code == 200
    html = r.text
    assert html.count("<svg") >= 2  # the province chart and at least one trend
    assert "79 · Hồ Chí Minh" in html
    assert "01 · Hà Nội" in html and "&lt;5" in html
    assert "J18.9" in html
    assert "<script" not in html


async def test_old_boundaries_show_the_province_as_sent(visits, client):
    html = (await client.get("http://test/ui/reports?era=old")).text
    assert "74 · Bình Dương" in html
    assert "79 · Hồ Chí Minh" not in html


async def test_an_empty_database_says_so(client):
    html = (await client.get("http://test/ui/reports?measure=khong-co")).text
    assert "Chưa có dữ liệu" in html
