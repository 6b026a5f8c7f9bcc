"""ICD-10 chapters/blocks and notifiable diseases before and after the 2026 change (TT 54/2015 -> TT 15/2026)."""

from __future__ import annotations

import datetime as dt

import pytest

from mappings import reporting

BEFORE = dt.date(2026, 6, 30)
AFTER = dt.date(2026, 7, 1)


@pytest.mark.parametrize(
    ("code", "chapter"),
    [
        ("A00", "I"),
        ("B99", "I"),
        ("D48.9", "II"),
        ("D50", "III"),
        ("H59", "VII"),
        ("H60.0", "VIII"),
        ("Q87.11", "XVII"),  # Vietnamese 5-character extension
        ("T98.3", "XIX"),
        ("Y98", "XX"),
        ("Z99", "XXI"),
        ("U07.1", "XXII"),
        ("b26.3†", "I"),  # dagger code as written on records
    ],
)
def test_chapter_of_edge_codes(code, chapter):
    assert reporting.chapter_of(code).number == chapter


def test_chapter_of_a_non_code_is_none():
    assert reporting.chapter_of("XYZ") is None
    assert reporting.chapter_of("") is None


def test_chapters_carry_vietnamese_titles():
    assert reporting.chapter_of("J18.9").title_vi == "Bệnh hệ hô hấp"
    assert len(reporting.chapters()) == 22


def test_block_of_gives_the_innermost_block():
    block = reporting.block_of("C16.9")
    assert (block.range, block.parent, block.chapter) == ("C15-C26", "C00-C75", "II")


def test_every_block_lies_inside_its_chapter():
    chapters = {c.number: c for c in reporting.chapters()}
    assert len(reporting.blocks()) == 274
    for b in reporting.blocks():
        c = chapters[b.chapter]
        assert c.start <= b.start <= b.end <= c.end, b


def test_pertussis_went_from_a_48_hour_to_a_24_hour_report_on_1_july_2026():
    before, after = reporting.notifiable("A37.0", BEFORE), reporting.notifiable("A37.0", AFTER)
    assert (before.id, before.group, before.report, before.regime) == ("pertussis", "B", "48h", "tt54-2015")
    assert (after.id, after.report, after.regime, after.regime_status) == (
        "pertussis",
        "24h",
        "tt15-2026",
        "provisional",
    )


def test_cholera_is_group_a_and_24_hours_in_both_regimes():
    assert [
        (d.group, d.report)
        for d in (reporting.notifiable("A00.9", BEFORE), reporting.notifiable("A00", AFTER))
    ] == [
        ("A", "24h"),
        ("A", "24h"),
    ]


def test_covid19_moved_from_group_a_to_group_b_on_20_october_2023():
    assert reporting.notifiable("U07.1", dt.date(2021, 5, 1)).group == "A"
    assert reporting.notifiable("U07.1", dt.date(2023, 10, 20)).group == "B"


def test_chikungunya_became_notifiable_with_qd_3644():
    assert reporting.notifiable("A92.0", dt.date(2025, 11, 24)) is None
    assert reporting.notifiable("A92.0", dt.date(2025, 11, 25)).group == "B"


def test_the_most_specific_code_pattern_wins():
    assert reporting.notifiable("A75.3", BEFORE).id == "scrub_typhus"  # group C
    assert reporting.notifiable("A75.1", BEFORE).id == "typhus"  # group B


def test_hfmd_is_selected_by_b08_4_not_by_the_a08_4_printed_in_tt54():
    assert reporting.notifiable("B08.4", BEFORE).id == "hfmd"
    assert reporting.notifiable("A08.4", BEFORE) is None


def test_a_national_five_character_code_matches_its_subcategory():
    assert reporting.notifiable("A39.01", BEFORE).id == "meningococcal_meningitis"


def test_a_non_infectious_diagnosis_is_not_notifiable():
    assert reporting.notifiable("I10", AFTER) is None


def test_nothing_is_notifiable_before_the_first_regime():
    assert reporting.notifiable("A00", dt.date(2015, 1, 1)) is None
