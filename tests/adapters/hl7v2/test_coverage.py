"""docs/hl7v2-coverage.md is what the HL7 v2 mapper does: regenerated and compared, every gap explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.hl7v2.coverage import REFUSED, render, rows
from mappings import load_yaml

DOC = Path(__file__).resolve().parents[3] / "docs" / "hl7v2-coverage.md"


@pytest.fixture(scope="module")
def table():
    return rows()


def test_every_field_the_ig_maps_is_listed(table):
    fields = load_yaml("hl7v2/ig-fields.yaml")
    assert [(r.segment, r.field) for r in table] == [(s, f) for s, fs in fields.items() for f in fs]


def test_every_field_that_changes_nothing_has_a_reason(table):
    assert [r.field for r in table if not r.becomes and not r.reason] == []


def test_no_stale_reason_for_a_field_the_mapper_uses(table):
    configured = load_yaml("hl7v2/coverage.yaml")["fields"]
    assert [r.field for r in table if r.becomes and (configured.get(r.field) or {}).get("reason")] == []


def test_every_shared_reason_is_used(table):
    shared = set(load_yaml("hl7v2/coverage.yaml")["reasons"])
    assert shared - {r.kind for r in table} == set()


def test_key_fields_reach_their_resources(table):
    by = {r.field: r.becomes for r in table}
    assert "Patient.gender" in by["PID-8"]
    assert "Observation.valueQuantity" in by["OBX-6"]  # units (UCUM) are part of the value
    assert "Observation.interpretation" in by["OBX-8"]
    assert "Observation.status" in by["OBX-11"]
    assert "Encounter.period" in by["PV1-45"]
    assert "AllergyIntolerance.criticality" in by["AL1-4"]
    assert "Immunization.lotNumber" in by["RXA-15"]
    assert "DocumentReference.securityLabel" in by["TXA-18"]
    assert REFUSED in by["RXA-5"]  # a vaccination without its vaccine is refused (AE), not stored


def test_the_checked_in_document_is_current(table):
    assert DOC.read_text(encoding="utf-8") == render(table), (
        "regenerate: python -m adapters.hl7v2.coverage > docs/hl7v2-coverage.md"
    )
