"""CCCD structure checks and BHYT card parsing."""

from fhir_server.identity.cards import bhyt_stable_part, cccd_problems, parse_bhyt, parse_cccd


def test_cccd_structure_decodes_province_century_sex_and_year():
    info = parse_cccd("001 085 012345")  # Hà Nội, male born in the 1900s, year 85
    assert info is not None
    assert (info.province, info.sex, info.birth_year) == ("001", "male", 1985)
    assert parse_cccd("079305123456").sex == "female" and parse_cccd("079305123456").birth_year == 2005


def test_cccd_rejects_bad_length_and_unknown_province():
    assert parse_cccd("00108501234") is None  # 11 digits
    assert parse_cccd("003085012345") is None  # 003 is not a province code
    assert parse_cccd("099085012345") is None  # beyond the 63 provinces
    assert cccd_problems("12345") == ["not 12 digits"]


def test_cccd_cross_check_with_birth_year_and_sex():
    assert cccd_problems("001085012345", birth_year=1985, sex="male") == []
    problems = cccd_problems("001085012345", birth_year=1986, sex="female")
    assert len(problems) == 2 and "1985" in problems[0]


def test_bhyt_stable_part_survives_benefit_group_change():
    # Same person: card prefix changed from enterprise employee (DN4) to pensioner (HT3).
    old, new = "DN4010123456789", "HT3010123456789"
    assert parse_bhyt(old).group == "DN" and parse_bhyt(new).level == 3
    assert bhyt_stable_part(old) == bhyt_stable_part(new) == "0123456789"


def test_bhyt_accepts_bhxh_and_cccd_forms():
    assert parse_bhyt("0123456789").form == "bhxh10"
    card = parse_bhyt("079305123456")
    assert card.form == "cccd12" and card.key_kind == "cccd" and card.stable == "079305123456"
    assert parse_bhyt("DN6010123456789") is None  # benefit level must be 1-5
    assert parse_bhyt("dn4-01-0123456789").stable == "0123456789"  # spacing/case noise from HIS screens
