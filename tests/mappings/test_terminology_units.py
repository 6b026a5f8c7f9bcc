"""Unit spellings seen in Vietnamese exports -> UCUM (mappings/terminology/units.yaml)."""

from __future__ import annotations

import pytest
from ucumvert import get_ucum_parser

from mappings import load_yaml
from mappings.terminology import _fold_unit, ucum

UNITS = load_yaml("terminology/units.yaml")


def test_every_ucum_code_in_the_table_parses_as_ucum():
    parser = get_ucum_parser()
    for code in UNITS["units"]:
        parser.parse(code)  # raises on anything that is not UCUM


def test_the_parser_rejects_spellings_that_are_not_ucum():
    parser = get_ucum_parser()
    for text in ("mIU/mL", "IU/L", "lần/phút"):
        with pytest.raises(Exception):
            parser.parse(text)


def test_no_folded_spelling_points_at_two_units():
    seen: dict[str, str] = {}
    for code, spec in UNITS["units"].items():
        if spec.get("case_sensitive"):
            continue
        for text in spec["text"]:
            key = _fold_unit(str(text))
            assert seen.setdefault(key, code) == code, f"{text!r} folds onto {seen[key]} and {code}"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("mmol/l", "mmol/L"),
        ("mmol/L", "mmol/L"),
        ("µmol/l", "umol/L"),
        ("umol/L", "umol/L"),
        ("g/l", "g/L"),
        ("g/L", "g/L"),
        ("G/L", "10*9/L"),
        ("T/L", "10*12/L"),
        ("%", "%"),
        ("U/L", "U/L"),
        ("UI/L", "[IU]/L"),
        ("IU/L", "[IU]/L"),
        ("mg/dl", "mg/dL"),
        ("lần/phút", "/min"),
        ("nhịp/phút", "/min"),
        ("l/p", "/min"),
        ("độ C", "Cel"),
        ("°C", "Cel"),
        ("mmHg", "mm[Hg]"),
        ("kg", "kg"),
        ("cm", "cm"),
        ("m", "m"),
        ("fl", "fL"),
        ("pg", "pg"),
        ("mEq/l", "meq/L"),
        ("ng/ml", "ng/mL"),
        ("mUI/ml", "m[IU]/mL"),
        ("s", "s"),
        ("giây", "s"),
        (" mmol/l ", "mmol/L"),
        ("MMOL/L", "mmol/L"),
    ],
)
def test_vietnamese_spellings_map_to_ucum(text, code):
    assert ucum(text)[0] == code


def test_giga_per_litre_is_never_read_as_grams():
    assert ucum("G/L")[0] != ucum("g/L")[0]
    assert ucum("g/l")[0] == "g/L"


def test_a_display_comes_with_the_code():
    assert ucum("G/L") == ("10*9/L", "G/L (10^9/L)")


@pytest.mark.parametrize("text", ["cái", "lần", "viên", "-", "", None, "S", "C", "đơn vị lạ"])
def test_texts_that_are_not_units_give_none(text):
    assert ucum(text) is None
