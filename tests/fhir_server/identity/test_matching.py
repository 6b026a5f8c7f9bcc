"""Comparison features and pair decisions on hand-made Vietnamese records."""

from fhir_server.identity.features import extract, normalize_phone, parse_birth
from fhir_server.identity.scorer import MATCH, NON_MATCH, POSSIBLE, default_matcher

from .conftest import patient

HOME = {"province": "01", "district": "005", "ward": "00160"}


def test_missing_accents_and_case_still_match():
    a = patient("01001", "BN1", "Nguyễn Thị Ngọc Ánh", "1990-03-14", "female", **HOME)
    b = patient("79010", "X77", "NGUYEN THI NGOC ANH", "1990-03-14", "female", **HOME)
    fa, fb = extract(a), extract(b)
    assert fa.family == fb.family == "nguyen" and fa.given == fb.given == "thi ngoc anh"
    d = default_matcher().decide(fa, fb)
    assert d.outcome == MATCH and d.method == "probabilistic"
    assert d.features()["given"] == "exact"


def test_swapped_day_and_month_is_recognised():
    a = patient("01001", "BN1", "Trần Văn Hùng", "1978-04-09", "male", **HOME)
    b = patient("01002", "BN9", "Trần Văn Hùng", "1978-09-04", "male", **HOME)
    d = default_matcher().decide(extract(a), extract(b))
    assert d.features()["birth"] == "swapped" and d.outcome == MATCH


def test_year_only_and_0101_filler_compare_as_partial():
    assert parse_birth("1950") == (1950, None, None)
    assert parse_birth("1950-01-01") == (1950, None, None)
    a = patient("01001", "BN1", "Lê Thị Hoa", "1950", "female", **HOME)
    b = patient("01002", "BN2", "Lê Thị Hoa", "1950-07-21", "female", **HOME)
    assert default_matcher().decide(extract(a), extract(b)).features()["birth"] == "partial"


def test_common_family_name_weighs_less_than_rare_one():
    m = default_matcher()
    assert m.family_frequency("nguyen") > 0.3
    common = m.weight("family", "agree", extract(patient("1", "1", "Nguyễn An")))
    rare = m.weight("family", "agree", extract(patient("1", "1", "Khúc An")))
    assert rare > common + 5


def test_twins_are_not_linked_automatically():
    # Same family, birth date, home and parent's phone; different given names.
    a = patient("01001", "BN1", "Phạm Minh Khoa", "2012-05-20", "male", phone="0912345678", **HOME)
    b = patient("01002", "BN2", "Phạm Minh Khang", "2012-05-20", "male", phone="0912345678", **HOME)
    d = default_matcher().decide(extract(a), extract(b))
    assert d.outcome in (POSSIBLE, NON_MATCH)


def test_conflicting_cccd_goes_to_review_not_link():
    a = patient(
        "01001",
        "BN1",
        "Đỗ Văn Nam",
        "1985-02-03",
        "male",
        cccd="001085012345",
        bhyt="DN4010123456789",
        **HOME,
    )
    b = patient(
        "01002",
        "BN2",
        "Đỗ Văn Nam",
        "1985-02-03",
        "male",
        cccd="001085099999",
        bhyt="HT3010123456789",
        **HOME,
    )
    d = default_matcher().decide(extract(a), extract(b))
    assert d.outcome == POSSIBLE and d.reason == "identifiers conflict"


def test_phone_normalisation():
    assert normalize_phone("+84 912 345 678") == normalize_phone("0912345678") == "912345678"
    assert normalize_phone("0000000000") is None
