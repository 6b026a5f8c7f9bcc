"""Vietnamese lab test names and codes -> LOINC (mappings/terminology/lab-loinc.csv)."""

from __future__ import annotations

import pytest
from ucumvert import get_ucum_parser

from mappings.terminology import lab_loinc, lab_tests, loinc_check_digit_ok


def test_the_table_covers_at_least_150_tests_of_a_general_hospital():
    assert len(lab_tests()) >= 150


def test_every_row_has_a_loinc_code_with_a_correct_check_digit():
    wrong = [t.loinc_code for t in lab_tests() if not loinc_check_digit_ok(t.loinc_code)]
    assert wrong == []


def test_the_check_digit_rule_accepts_real_codes_and_rejects_a_changed_digit():
    assert loinc_check_digit_ok("2345-7")  # Glucose [Mass/volume] in Serum or Plasma
    assert loinc_check_digit_ok("718-7")  # Hemoglobin [Mass/volume] in Blood
    assert loinc_check_digit_ok("14682-9")  # Creatinine [Moles/volume] in Serum or Plasma
    assert not loinc_check_digit_ok("2345-6")
    assert not loinc_check_digit_ok("14682")


def test_each_loinc_code_appears_once():
    codes = [t.loinc_code for t in lab_tests()]
    assert len(codes) == len(set(codes))


def test_every_row_states_its_source_and_verified_rows_say_which_list():
    for t in lab_tests():
        assert t.source, t.loinc_code
        assert t.verified_against in ("", "top2000-si", "top2000-us"), t.loinc_code
        if t.verified_against:
            assert "Top 2000" in t.source


def test_every_usual_unit_in_the_table_is_valid_ucum():
    parser = get_ucum_parser()
    for t in lab_tests():
        if t.ucum_unit:
            parser.parse(t.ucum_unit)  # raises on anything that is not UCUM


@pytest.mark.parametrize(
    ("code", "name", "loinc"),
    [
        ("GLU", None, "14749-6"),
        (None, "Đường máu", "14749-6"),
        (None, "duong mau", "14749-6"),
        (None, "Định lượng Glucose [Máu]", "14749-6"),
        (None, "Ure", "22664-7"),
        (None, "Urê", "22664-7"),
        ("CREA", None, "14682-9"),
        (None, "AST (GOT)", "1920-8"),
        (None, "ast(got)", "1920-8"),
        (None, "Đo hoạt độ ALT (GPT) [Máu]", "1742-6"),
        ("WBC", None, "6690-2"),
        (None, "Bạch cầu", "6690-2"),
        (None, "BẠCH CẦU", "6690-2"),
        ("HGB", None, "718-7"),
        (None, "Huyết sắc tố", "718-7"),
        (None, "HbA1c", "4548-4"),
        (None, "HBsAg", "5195-3"),
        (None, "Anti-HCV", "16128-1"),
        (None, "Nhóm máu ABO", "883-9"),
        (None, "Tốc độ máu lắng", "4537-7"),
    ],
)
def test_hospital_spellings_and_abbreviations_find_the_loinc_code(code, name, loinc):
    match = lab_loinc(local_code=code, name=name)
    assert match is not None and match.loinc_code == loinc


def test_a_percentage_and_a_count_of_the_same_cell_type_stay_apart():
    assert lab_loinc("NEU%").loinc_code == "770-8"
    assert lab_loinc("NEU#").loinc_code == "751-8"


def test_a_local_numeric_code_falls_back_to_the_name():
    assert lab_loinc(local_code="XN0012", name="Creatinin").loinc_code == "14682-9"


def test_the_reported_unit_chooses_between_molar_and_mass_variants():
    assert lab_loinc(name="Creatinin", unit="µmol/l").loinc_code == "14682-9"
    assert lab_loinc(name="Creatinin", unit="mg/dl").loinc_code == "2160-0"
    assert lab_loinc(name="Cholesterol", unit="mmol/L").loinc_code == "14647-2"
    assert lab_loinc(name="Cholesterol", unit="mg/dL").loinc_code == "2093-3"


def test_the_unit_tells_plateletcrit_from_procalcitonin():
    assert lab_loinc("PCT", unit="%").loinc_code == "51637-7"
    assert lab_loinc("PCT", unit="ng/ml").loinc_code == "33959-8"


def test_the_specimen_tells_urine_glucose_from_blood_glucose():
    assert lab_loinc("GLU").specimen == "ser_plas"
    assert lab_loinc("GLU", specimen="urine").loinc_code == "22705-8"
    assert lab_loinc("GLU", specimen="urine", unit="mg/dL").loinc_code == "5792-7"


def test_an_unknown_analyte_is_not_guessed():
    assert lab_loinc(local_code="XN9999", name="Chỉ số lạ không có trong bảng") is None
    assert lab_loinc() is None
