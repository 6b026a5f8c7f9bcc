"""Code lists of the checker: shipped data, honest gaps, date-versioned lists, pluggable loaders."""

from __future__ import annotations

from adapters.qd130.check_lists import CodeList, CodeLists, Unavailable, default_lists


def test_ethnicity_list_has_the_54_gso_codes_and_the_vendor_undetermined_code():
    dan_toc = default_lists().get("dan_toc", None)
    assert isinstance(dan_toc, CodeList)
    assert all(dan_toc.contains(f"{n:02d}") for n in range(1, 55))
    assert dan_toc.contains("56") and not dan_toc.contains("55") and not dan_toc.contains("1")


def test_incomplete_nationality_list_is_not_used():
    got = default_lists().get("quoc_tich", "20240101")
    assert isinstance(got, Unavailable)
    assert "Thông tư 07/2016/TT-BCA" in got.reason_vi


def test_visit_type_list_depends_on_the_discharge_date():
    lists = default_lists()
    before = lists.get("ma_loai_kcb", "20260731")
    assert isinstance(before, CodeList) and before.contains("03") and not before.contains("11")
    after = lists.get("ma_loai_kcb", "20260801")
    assert isinstance(after, Unavailable) and "QĐ 1804/QĐ-BYT" in after.reason_vi


def test_loader_lists_call_the_named_function_and_missing_modules_are_reported():
    lists = CodeLists(
        {
            "keywords": {"loader": "keyword:iskeyword", "title": {"vi": "từ khóa", "en": "keywords"}},
            "absent": {
                "loader": "mappings.khong_co:valid",
                "reason": {"vi": "chưa cài", "en": "not installed"},
            },
        }
    )
    kw = lists.get("keywords", None)
    assert isinstance(kw, CodeList) and kw.contains("for") and not kw.contains("J00")
    assert lists.get("absent", None) == Unavailable("chưa cài", "not installed")


def test_overrides_replace_a_missing_list():
    config = {"ma_khoa": {"available": False, "reason": {"vi": "chưa có", "en": "missing"}}}
    assert isinstance(CodeLists(config).get("ma_khoa", None), Unavailable)
    k = CodeLists(config, {"ma_khoa": {"K01", "K03"}}).get("ma_khoa", None)
    assert isinstance(k, CodeList) and k.contains("K03") and not k.contains("K48")
