"""ICD-10 code normalisation and validation (mappings/terminology.py)."""

from __future__ import annotations

import csv

import pytest

from mappings.terminology import icd10, icd10_list_available, icd10_valid, normalize_icd10


@pytest.fixture
def moh_list(tmp_path):
    """A small list in the Ministry's spreadsheet layout (title rows, then MÃ BỆNH … TÊN BỆNH)."""
    path = tmp_path / "icd10.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["DANH MỤC MÃ BỆNH ICD-10"])
        w.writerow([])
        w.writerow(["STT", "MÃ CHƯƠNG", "MÃ BỆNH", "MÃ BỆNH KHÔNG DẤU", "DISEASE NAME", "TÊN BỆNH"])
        w.writerow(
            ["1", "X", "J18", "J18", "Pneumonia, organism unspecified", "Viêm phổi, tác nhân không xác định"]
        )
        w.writerow(["2", "X", "J18.9", "J189", "Pneumonia, unspecified", "Viêm phổi, không đặc hiệu"])
        w.writerow(["3", "IX", "I10", "I10", "Essential (primary) hypertension", "Bệnh tăng huyết áp vô căn"])
        w.writerow(["4", "I", "A17.0†", "A170", "Tuberculous meningitis", "Lao màng não"])
        w.writerow(["5", "I", "B18.00", "B1800", "Chronic viral hepatitis B", "Viêm gan virus B mạn"])
    return str(path)


@pytest.fixture
def no_list(tmp_path):
    """No ICD-10 list: the configured path names a file that does not exist."""
    return str(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("J18.9", "J18.9"),
        ("J189", "J18.9"),
        ("j18.9", "J18.9"),
        (" I10 ", "I10"),
        ("A17.0†", "A17.0"),
        ("G01*", "G01"),
    ],
)
def test_the_usual_ways_of_writing_a_code_normalise_to_the_dotted_form(raw, norm):
    assert normalize_icd10(raw) == norm


@pytest.mark.parametrize("raw", ["ZZZ.99", "Z", "123", "J18.999", "", None])
def test_malformed_codes_do_not_normalise(raw):
    assert normalize_icd10(raw) is None


def test_zzz_99_is_never_valid(no_list):
    assert not icd10_valid("ZZZ.99", no_list)


def test_without_a_list_only_the_form_is_checked(no_list):
    assert not icd10_list_available(no_list)
    assert icd10_valid("J18.9", no_list)
    assert icd10("J18.9", no_list) is None


def test_a_code_is_found_however_it_is_written(moh_list):
    for raw in ("J18.9", "J189", "j18.9"):
        entry = icd10(raw, moh_list)
        assert entry is not None
        assert (entry.code, entry.code_nodot) == ("J18.9", "J189")
        assert entry.name_vi == "Viêm phổi, không đặc hiệu"
        assert entry.name_en == "Pneumonia, unspecified"


def test_dagger_codes_and_five_character_vietnamese_codes_are_loaded(moh_list):
    assert icd10("A17.0", moh_list).name_vi == "Lao màng não"
    assert icd10("B1800", moh_list).code == "B18.00"


def test_with_a_list_a_well_formed_code_missing_from_it_is_not_valid(moh_list):
    assert icd10_list_available(moh_list)
    assert icd10_valid("I10", moh_list)
    assert not icd10_valid("J99.9", moh_list)
    assert not icd10_valid("ZZZ.99", moh_list)
    assert icd10("ZZZ.99", moh_list) is None
