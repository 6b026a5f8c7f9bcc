"""Administrative units before/after the 1 Jul 2025 reform: lookups by code and name, crosswalk, address resolution."""

from __future__ import annotations

import datetime as dt

from mappings import admin_units as au


def test_the_same_province_code_names_different_provinces_in_each_era():
    # 24 was Bắc Giang; since 2025-07-01 it is the merged Bắc Ninh (old 27 Bắc Ninh is closed)
    assert au.province("24", "old").name == "Tỉnh Bắc Giang"
    assert au.province("24", "new").name == "Tỉnh Bắc Ninh"
    assert au.province("27", "new") is None


def test_province_codes_are_accepted_padded_or_not():
    assert au.province("079").code == au.province(79).code == au.province("79").code == "79"


def test_a_province_is_found_by_name_with_or_without_accents_and_prefix():
    for name in ("Tỉnh Bình Dương", "binh duong", "BÌNH DƯƠNG", "Bình  Dương"):
        assert [p.code for p in au.find_provinces(name, "old")] == ["74"], name
    assert au.find_provinces("Bình Dương", "new") == []


def test_hcmc_is_found_by_its_abbreviations_in_the_new_era():
    for name in ("TP. Hồ Chí Minh", "Thành phố Hồ Chí Minh", "TP HCM", "tp.hcm"):
        assert [p.code for p in au.find_provinces(name, "new")] == ["79"], name


def test_a_district_is_found_by_code_or_by_name_within_its_province():
    assert au.district("0760").name == "Quận 1"
    assert [d.code for d in au.find_districts("Q.1", province_code="79")] == ["760"]
    assert [d.code for d in au.find_districts("quan 1", province_code=79)] == ["760"]


def test_a_reused_commune_code_means_a_different_unit_in_each_era():
    assert au.ward("00004", "old").name == "Phường Trúc Bạch"
    assert au.ward("4", "new").name == "Phường Ba Đình"


def test_a_commune_is_found_by_unaccented_name_in_the_old_era():
    found = au.find_wards("Phuong Ben Nghe", "old", province_code="79")
    assert [(w.code, w.district_code) for w in found] == [("26740", "760")]


def test_a_commune_is_found_by_the_other_source_spelling():
    # GSO 2025-07-18 spells it Huổi Lếch; the 2025-03-01 list Huổi Lếnh
    assert [w.code for w in au.find_wards("Xã Huổi Lếnh", "old")] == ["03177"]


def test_a_new_commune_is_found_by_name_within_its_new_province():
    assert [w.code for w in au.find_wards("phường Sài Gòn", "new", province_code="79")] == ["26740"]


def test_numbered_wards_match_with_or_without_leading_zero():
    assert [w.code for w in au.find_wards("P.04", "old", district_code="794")] == ["27691"]


def test_merged_provinces_map_to_ho_chi_minh_city():
    assert au.new_province_codes("74") == ("79",)  # Bình Dương
    assert au.new_province_codes(77) == ("79",)  # Bà Rịa - Vũng Tàu
    assert au.old_province_codes("79") == ("74", "77", "79")


def test_an_old_binh_duong_address_resolves_to_ho_chi_minh_city():
    r = au.resolve_address("74", "718", "25747")  # Phường Phú Cường, TP Thủ Dầu Một
    assert (r.old_province.name, r.old_district.name, r.old_ward.name) == (
        "Tỉnh Bình Dương",
        "Thành phố Thủ Dầu Một",
        "Phường Phú Cường",
    )
    assert r.new_province.name == "Thành phố Hồ Chí Minh"
    assert r.new_ward.name == "Phường Thủ Dầu Một"
    assert r.problems == ()


def test_a_ba_ria_vung_tau_commune_resolves_without_its_district():
    r = au.resolve_address(77, None, 26508)  # Phường Thắng Tam, Vũng Tàu
    assert r.old_district.name == "Thành phố Vũng Tàu"
    assert (r.new_province.code, r.new_ward.name) == ("79", "Phường Vũng Tàu")


def test_a_split_commune_gives_candidates_not_a_guess():
    r = au.resolve_address("01", "001", "00007")  # Phường Cống Vị, Ba Đình
    assert r.new_ward is None
    assert [w.name for w in r.new_ward_candidates] == ["Phường Ngọc Hà", "Phường Giảng Võ"]
    assert r.new_province.code == "01"


def test_split_commune_links_say_which_part_and_which_source():
    links = au.new_ward_links("00007")
    assert {(link.new_ward_code, link.extent, link.sources) for link in links} == {
        ("00008", "partial", "both"),
        ("00025", "partial", "both"),
    }
    assert links[0].default  # vietnamadminunits' pick comes first


def test_codes_resolve_the_same_padded_or_not():
    assert au.resolve_address("079", "0760", "026740") == au.resolve_address(79, 760, 26740)


def test_an_island_district_without_communes_becomes_a_special_zone():
    r = au.resolve_address("77", "755", "")  # Huyện Côn Đảo
    assert (r.new_province.code, r.new_ward.code, r.new_ward.type) == ("79", "26732", "Đặc khu")


def test_a_commune_outside_the_given_district_is_reported_in_vietnamese():
    r = au.resolve_address("79", "761", "26740")  # Bến Nghé is in Quận 1 (760), not Quận 12
    assert [p.code for p in r.problems] == ["ward_not_in_district"]
    assert "không thuộc huyện" in r.problems[0].vi
    assert r.old_district.code == "760"  # the commune decides


def test_an_unknown_commune_code_is_a_problem_not_an_exception():
    r = au.resolve_address("79", None, "99999")
    assert [p.code for p in r.problems] == ["unknown_ward"]
    assert r.new_province.code == "79"


def test_a_new_commune_that_does_not_follow_from_the_old_one_is_flagged():
    r = au.resolve_address("01", "001", "00007", new_ward_code="00070")  # Hoàn Kiếm, not Ngọc Hà/Giảng Võ
    assert [p.code for p in r.problems] == ["eras_disagree"]


def test_a_post_reform_qd130_export_with_new_codes_and_no_district():
    r = au.resolve_qd130("79", "", "26740", on=dt.date(2025, 8, 1))
    assert r.old_ward is None
    assert (r.new_province.code, r.new_ward.name) == ("79", "Phường Sài Gòn")


def test_a_post_reform_export_without_district_but_with_an_old_province_is_read_as_old_codes():
    r = au.resolve_qd130("74", "", "25747", on=dt.date(2025, 8, 1))  # 74 Bình Dương no longer exists
    assert (r.old_ward.name, r.new_province.code, r.new_ward.name) == (
        "Phường Phú Cường",
        "79",
        "Phường Thủ Dầu Một",
    )


def test_a_qd130_export_with_a_district_code_is_read_as_old_codes():
    r = au.resolve_qd130("79", "760", "26740", on=dt.date(2025, 8, 1))
    assert (r.old_ward.name, r.new_ward.name) == ("Phường Bến Nghé", "Phường Sài Gòn")


def test_a_commune_merged_away_before_july_2025_still_resolves():
    w = au.ward("07693", "old")  # on the GSO list of 2025-03-01 only
    assert (w.name, w.source, w.district_code) == ("Xã Tân An", "dvhcvn-20250301", "213")
    assert au.resolve_address("24", "213", "07693").new_province.code == "24"


def test_the_lists_have_the_official_counts():
    assert (len(au.provinces("old")), len(au.districts()), len(au.provinces("new"))) == (63, 696, 34)
    new_wards = au.wards("new")
    assert len(new_wards) == 3321
    assert sorted({w.type for w in new_wards}) == ["Phường", "Xã", "Đặc khu"]
    assert sum(w.type == "Đặc khu" for w in new_wards) == 13
    assert [p.code for p in au.provinces("new") if p.type == "Thành phố"] == [
        "01",
        "31",
        "46",
        "48",
        "79",
        "92",
    ]


def test_every_old_commune_has_a_successor_inside_its_merged_province():
    links = au.ward_links()
    assert len(links) == 10639
    assert all(au.new_province_codes(link.old_province_code) == (link.new_province_code,) for link in links)
    assert {link.old_ward_code for link in links if link.old_ward_code} == {w.code for w in au.wards("old")}
    assert {link.new_ward_code for link in links} == {w.code for w in au.wards("new")}
