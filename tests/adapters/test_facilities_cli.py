"""`lienthong facilities load FILE`: the department's list becomes named Organizations; bad rows are named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from adapters.facility import organization_id
from lienthong.cli import app
from mappings import facilities

CSV = """ma_cskcb,name,level,tuyen,hang,province_old,province_new,source
79001,Bệnh viện Chợ Rẫy,chuyên sâu,trung ương,đặc biệt,79,,Sở Y tế 2026-01
74010,Bệnh viện Đa khoa tỉnh Bình Dương,cơ bản,tỉnh,I,74,79,Sở Y tế 2026-01
7901,Phòng khám thiếu một số,,,,79,,
"""


@pytest.fixture(autouse=True)
def _forget_department_rows():
    yield
    facilities.clear_department()


def test_valid_rows_become_named_organizations_and_the_bad_row_is_named(db_url, tmp_path):
    path = tmp_path / "co-so.csv"
    path.write_text(CSV, encoding="utf-8")
    r = CliRunner().invoke(app, ["--lang", "en", "facilities", "load", str(path), "--db", db_url])
    assert r.exit_code == 1, r.output
    assert "line 4, column ma_cskcb" in r.output
    assert "2 facility(ies) loaded, 1 row(s) rejected" in r.output


async def test_a_loaded_facility_is_found_by_its_old_or_new_province(db_url, tmp_path, client):
    path = tmp_path / "co-so.csv"
    path.write_text(CSV, encoding="utf-8")
    CliRunner().invoke(app, ["facilities", "load", str(path), "--db", db_url])
    org = (await client.get(f"/Organization/{organization_id('74010')}")).json()
    assert org["name"] == "Bệnh viện Đa khoa tỉnh Bình Dương"
    assert org["extension"][0]["valueCoding"]["code"] == "co-ban"
    assert org["address"][0]["state"] == "Thành phố Hồ Chí Minh"
    for query in ("address-state=Bình Dương", "address-state=ho chi minh"):
        bundle = (await client.get(f"/Organization?{query}")).json()
        names = {e["resource"]["name"] for e in bundle.get("entry", [])}
        assert "Bệnh viện Đa khoa tỉnh Bình Dương" in names, query


def test_the_vietnamese_summary(db_url, tmp_path):
    path = tmp_path / "co-so.csv"
    path.write_text(CSV, encoding="utf-8")
    r = CliRunner().invoke(app, ["--lang", "vi", "facilities", "load", str(path), "--db", db_url])
    assert "dòng 4, cột ma_cskcb" in r.output
    assert "Đã nạp 2 cơ sở, từ chối 1 dòng" in r.output
