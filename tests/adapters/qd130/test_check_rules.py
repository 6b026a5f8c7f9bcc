"""Every rule of rules.yaml fails on purpose: inject its violation into synthetic data, see exactly it fire."""

from __future__ import annotations

from collections import Counter

import pytest

from adapters.qd130.check import check_bytes
from adapters.qd130.check_report import NOT_CHECKED
from adapters.qd130.check_rules import load_rules
from adapters.synth.violations import RECIPES, NotApplicable, inject

RULE_IDS = [r.id for r in load_rules().rules]


def _where(report) -> Counter:
    return Counter((f.rule_id, f.table, f.stt, f.field) for f in report.findings)


def _first_injection(visits, rule_id):
    for v in visits:
        try:
            return v, inject(v.xml, rule_id)
        except NotApplicable:
            continue
    pytest.fail(f"no synthetic visit can host a violation of {rule_id}")


def test_every_rule_has_a_violation_recipe():
    assert set(RULE_IDS) == set(RECIPES)


def test_rule_ids_are_unique_and_well_formed():
    assert len(RULE_IDS) == len(set(RULE_IDS))
    assert all(rid.startswith("QD130-") and rid.rsplit("-", 1)[1].isdigit() for rid in RULE_IDS)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_injected_violation_fires_exactly_its_rule_at_the_right_place(rule_id, synth_visits, full_lists):
    visit, injected = _first_injection(synth_visits, rule_id)
    before = _where(check_bytes(visit.xml, visit.filename, lists=full_lists))
    after = _where(check_bytes(injected.xml, visit.filename, lists=full_lists))
    new = after - before
    assert new == Counter({(rule_id, injected.table, injected.stt, injected.field): 1})


def test_violation_messages_are_vietnamese_with_english_available(synth_visits, full_lists):
    visit, injected = _first_injection(synth_visits, "QD130-XML1-013")
    report = check_bytes(injected.xml, visit.filename, lists=full_lists)
    (f,) = [f for f in report.findings if f.rule_id == "QD130-XML1-013"]
    assert f.message_vi.startswith("NGAY_RA = ") and "trước NGAY_VAO" in f.message_vi
    assert "is before NGAY_VAO" in f.message_en
    assert f.severity == "E" and "RULE_XML1_NGAY_RA_01" in f.legal_ref
    assert f.ma_lk == visit.ma_lk


UNSHIPPED = {
    "QD130-XML1-003": "quốc tịch",
    "QD130-XML1-024": "mã khoa",
    "QD130-XML1-025": "cơ sở KBCB",
    "QD130-XML1-037": "YHCT",
    "QD130-XML2-005": "DMDC",
    "QD130-XML3-010": "DVKT",
}


@pytest.mark.parametrize("rule_id", sorted(UNSHIPPED))
def test_rule_without_its_list_says_not_checked_instead_of_passing(rule_id, synth_visits):
    visit, injected = _first_injection(synth_visits, rule_id)
    report = check_bytes(injected.xml, visit.filename)
    assert rule_id not in {f.rule_id for f in report.findings}
    status = report.rules[rule_id]
    assert status.status == NOT_CHECKED
    assert UNSHIPPED[rule_id] in status.reason_vi and status.reason_en


def test_patient_category_list_is_chosen_by_the_discharge_date(full_lists):
    from adapters.synth import generate

    before = generate(hospitals=1, visits=3, seed=3, start="20240101").visits[0]
    after = generate(hospitals=1, visits=3, seed=3, start="20251001").visits[0]
    old = inject(before.xml, "QD130-XML1-023")
    new = inject(after.xml, "QD130-XML1-023")
    old_report = check_bytes(old.xml, lists=full_lists)
    new_report = check_bytes(new.xml, lists=full_lists)
    assert "QD130-XML1-023" in {f.rule_id for f in old_report.findings}
    assert old_report.rules["QD130-XML1-023"].status == "checked"
    assert "QD130-XML1-023" not in {f.rule_id for f in new_report.findings}
    assert new_report.rules["QD130-XML1-023"].status == NOT_CHECKED
    assert "QĐ 3276/QĐ-BYT" in new_report.rules["QD130-XML1-023"].reason_vi


def test_synthetic_generator_gaps_are_the_only_errors(synth_visits, full_lists):
    # The generator omits four "other source" amounts and the district/ward codes; the checker must say
    # so, and must find nothing else wrong in data built to the standard.
    errors, warnings = Counter(), Counter()
    for v in synth_visits:
        for f in check_bytes(v.xml, v.filename, lists=full_lists).findings:
            (errors if f.severity == "E" else warnings)[(f.rule_id, f.field)] += 1
    gaps = {("QD130-XML1-001", "MAHUYEN_CU_TRU"), ("QD130-XML1-001", "MAXA_CU_TRU")}
    gaps |= {
        (rule, f"T_NGUONKHAC_{part}")
        for rule in ("QD130-XML2-001", "QD130-XML3-001")
        for part in ("NSNN", "VTNN", "VTTN", "CL")
    }
    assert set(errors) == gaps
    assert {rule for rule, _ in warnings} <= {"QD130-ALL-016"}  # orders timed just after a short visit
