"""Facility registry: shipped rows, a department CSV with per-row errors, and precedence of the department list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mappings import facilities

HEADER = "ma_cskcb,name,level,tuyen,hang,province_old,province_new,source\n"


@pytest.fixture(autouse=True)
def no_department_rows() -> Iterator[None]:
    """Each test starts and ends with only the shipped facilities."""
    facilities.clear_department()
    yield
    facilities.clear_department()


def _csv(tmp_path: Path, body: str, *, bom: bool = False) -> Path:
    path = tmp_path / "co-so-kcb.csv"
    path.write_text(("\ufeff" if bom else "") + HEADER + body, encoding="utf-8")
    return path


def test_a_shipped_facility_carries_its_old_and_new_province():
    f = facilities.lookup("06001")
    assert (f.name, f.tuyen, f.province_old, f.province_new) == (
        "Bệnh viện Đa khoa tỉnh Bắc Kạn",
        "tinh",
        "06",
        "19",
    )


def test_an_unknown_code_is_none():
    assert facilities.lookup("79999") is None
    assert facilities.lookup("") is None


def test_a_bad_row_is_reported_with_its_line_and_the_good_rows_still_load(tmp_path):
    path = _csv(
        tmp_path,
        "79001,Bệnh viện Chợ Rẫy,chuyên sâu,trung ương,đặc biệt,79,79,Sở Y tế\n"
        "7900,Phòng khám thiếu một ký tự,,,,79,,\n"
        "01C51,Trạm Y tế phường,ban đầu,xã,,01,,\n",
    )
    rows, errors = facilities.load_csv(path)
    assert [f.ma_cskcb for f in rows] == ["79001", "01C51"]
    assert [(e.line, e.column) for e in errors] == [(3, "ma_cskcb")]
    assert "5 ký tự" in errors[0].vi


def test_vietnamese_spellings_of_level_route_and_rank_are_normalised(tmp_path):
    rows, errors = facilities.load_csv(
        _csv(tmp_path, "79001,Bệnh viện Chợ Rẫy,Chuyên sâu,TW,Đặc biệt,79,,\n")
    )
    assert errors == []
    assert (rows[0].level, rows[0].tuyen, rows[0].hang) == ("chuyen-sau", "trung-uong", "dac-biet")


def test_the_new_province_is_filled_in_from_the_old_one(tmp_path):
    rows, _ = facilities.load_csv(_csv(tmp_path, "74001,Bệnh viện Đa khoa tỉnh Bình Dương,,tinh,,74,,\n"))
    assert rows[0].province_new == "79"


def test_a_new_province_that_the_old_one_did_not_merge_into_is_rejected(tmp_path):
    rows, errors = facilities.load_csv(_csv(tmp_path, "74001,Bệnh viện Đa khoa tỉnh Bình Dương,,,,74,75,\n"))
    assert rows == []
    assert [(e.line, e.column) for e in errors] == [(2, "province_new")]


def test_an_unknown_level_value_is_rejected_with_the_allowed_values(tmp_path):
    _, errors = facilities.load_csv(_csv(tmp_path, "79001,Bệnh viện Chợ Rẫy,tuyến cuối,,,79,,\n"))
    assert errors[0].column == "level"
    assert "chuyen-sau" in errors[0].vi


def test_a_repeated_code_is_an_error_on_its_second_line(tmp_path):
    rows, errors = facilities.load_csv(
        _csv(tmp_path, "79001,Chợ Rẫy,,,,79,,\n# ghi chú\n79001,Chợ Rẫy 2,,,,79,,\n")
    )
    assert [f.name for f in rows] == ["Chợ Rẫy"]
    assert [(e.line, e.column) for e in errors] == [(4, "ma_cskcb")]


def test_a_file_without_the_name_column_is_rejected_whole(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("ma_cskcb,ten\n79001,Chợ Rẫy\n", encoding="utf-8")
    rows, errors = facilities.load_csv(path)
    assert rows == [] and errors[0].column == "name"


def test_an_excel_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    rows, errors = facilities.load_csv(_csv(tmp_path, "79001,Bệnh viện Chợ Rẫy,,,,79,,\n", bom=True))
    assert (len(rows), errors) == (1, [])


def test_department_rows_take_precedence_over_shipped_ones(tmp_path):
    rows, _ = facilities.load_csv(
        _csv(tmp_path, "01001,Bệnh viện Bạch Mai (Sở Y tế),chuyên sâu,,đặc biệt,01,01,\n")
    )
    facilities.merge(rows)
    assert facilities.lookup("01001").hang == "dac-biet"
    assert facilities.lookup("06001").name == "Bệnh viện Đa khoa tỉnh Bắc Kạn"
    facilities.clear_department()
    assert facilities.lookup("01001").hang == ""
