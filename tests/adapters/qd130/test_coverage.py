"""docs/qd130-coverage.md is what the mapping does: regenerated and compared, every gap explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.qd130.coverage import render, rows
from mappings import load_yaml

DOC = Path(__file__).resolve().parents[3] / "docs" / "qd130-coverage.md"


@pytest.fixture(scope="module")
def table():
    return rows()


def test_every_field_of_the_standard_is_listed(table):
    fields = load_yaml("qd130/fields.yaml")["tables"]
    assert [(r.table, r.field) for r in table] == [(t, f) for t, names in fields.items() for f in names]


def test_every_field_that_changes_nothing_has_a_reason(table):
    assert [(r.table, r.field) for r in table if not r.becomes and not r.reason] == []


def test_no_stale_reason_for_a_field_the_mapping_uses(table):
    specific = load_yaml("qd130/coverage.yaml")["fields"]
    stale = [(r.table, r.field) for r in table if r.becomes and r.field in (specific.get(r.table) or {})]
    assert stale == []


def test_key_clinical_fields_reach_their_resources(table):
    by = {(r.table, r.field): r.becomes for r in table}
    assert "ClinicalImpression.note" in by[("XML1", "GHI_CHU")]
    assert "Medication" in by[("XML2", "SO_DANG_KY")]  # part of the product: a Medication of its own
    assert "Medication" in by[("XML2", "DANG_BAO_CHE")]
    assert any(p.startswith("Claim") for p in by[("XML1", "T_TONGCHI_BV")])
    assert "Observation.interpretation" in by[("XML4", "KET_LUAN")]
    # The tables that were archived only (issue 16): HIV care, TB, birth certificate, assessments.
    assert "Condition.extension" in by[("XML6", "NGAYKD_HIV")]
    assert "Observation.valueQuantity" in by[("XML6", "KQ_XNTL_VR")]
    assert "Condition.stage" in by[("XML15", "PHANLOAI_LAO_KT")]
    assert "Patient.birthDate" in by[("XML9", "NGAY_SINH_CON")]
    assert "Observation" in by[("XML9", "CAN_NANG_CON")]
    assert "DocumentReference.description" in by[("XML10", "SO_NGAY")]
    assert "ClinicalImpression.finding" in by[("XML12", "TONG_TYLE_TTCT")]


def test_every_table_of_the_standard_is_mapped(table):
    assert sorted({r.table for r in table if r.becomes}, key=lambda t: int(t[3:])) == [
        f"XML{n}" for n in range(1, 16)
    ]


def test_the_checked_in_document_is_current(table):
    assert DOC.read_text(encoding="utf-8") == render(table), (
        "regenerate: python -m adapters.qd130.coverage > docs/qd130-coverage.md"
    )
