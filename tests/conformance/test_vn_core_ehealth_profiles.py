"""Output against the 2020-21 Ministry VN Core guide's StructureDefinitions (devtools/profiles/validator.py).

The validator reads the guide's differentials (extracted from github.com/hl7vn/vn-core-ig, CC0); these tests
show it finds what the differentials forbid, and that every error over the samples, a synthetic dataset and
the HL7 v2 corpus is one of the documented deviations (devtools/profiles/ehealth-deviations.yaml)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from devtools.profiles.report import resources
from devtools.profiles.validator import DATA, Validator

BASE = "http://fhir.ehealth.gov.vn/core/StructureDefinition/"
DEVIATIONS = DATA.parent.parent / "ehealth-deviations.yaml"
V = Validator.ehealth()

PATIENT = {
    "resourceType": "Patient",
    "meta": {"profile": [BASE + "vn-core-patient"]},
    "name": [{"text": "NGUYỄN VĂN AN", "family": "NGUYỄN", "given": ["VĂN", "AN"]}],
    "extension": [
        {
            "url": BASE + "extension-race",
            "valueCodeableConcept": {
                "coding": [
                    {"system": "http://fhir.ehealth.gov.vn/core/CodeSystem/vn-core-race", "code": "01"}
                ]
            },
        }
    ],
}


def _errors(resource: dict) -> list[str]:
    return [f"{i.element}: {i.message}" for i in V.validate(resource) if i.severity == "error"]


def test_a_patient_that_follows_the_guide_passes():
    assert _errors(PATIENT) == []


def test_a_name_without_text_breaks_the_patient_profile():
    bad = copy.deepcopy(PATIENT)
    del bad["name"][0]["text"]
    assert any(e.startswith("Patient.name.text: minimum cardinality 1") for e in _errors(bad))


def test_an_ethnicity_outside_the_guides_code_system_breaks_its_extension():
    bad = copy.deepcopy(PATIENT)
    bad["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "77"
    issues = [i for i in V.validate(bad) if i.element == "Extension.value[x]"]
    assert issues and issues[0].severity in ("error", "warning") and "vn-core-race" in issues[0].message


def test_a_fixed_category_is_compared_exactly_and_a_slice_minimum_counted():
    obs = {
        "resourceType": "Observation",
        "meta": {"profile": [BASE + "vn-core-observation-lab-code"]},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"text": "Glucose"},
    }
    errors = _errors(obs)
    assert "Observation.category:laboratory: minimum cardinality 1, found 0" in errors
    assert "Observation.partOf: minimum cardinality 1, found 0" in errors


def test_a_parent_the_guide_builds_on_is_reported_as_not_checked():
    issues = V.validate(PATIENT)
    assert any(i.severity == "not-checked" and "Patient-uv-ips" in i.message for i in issues)


@pytest.fixture(scope="module")
def output_errors() -> list[tuple[str, str, str]]:
    found = []
    for items in resources(visits=40).values():
        for r in items:
            for i in V.validate(r):
                if i.severity == "error":
                    found.append((i.profile.rsplit("/", 1)[-1], i.element, i.message))
    return found


def _documented() -> list[dict]:
    return yaml.safe_load(DEVIATIONS.read_text(encoding="utf-8"))["deviations"]


def test_every_error_on_our_output_is_a_documented_deviation(output_errors):
    known = _documented()
    unexplained = {
        (p, e, re.sub(r", found.*", "", m))
        for p, e, m in output_errors
        if not any(d["profile"] == p and d["element"] == e and m.startswith(d["message"]) for d in known)
    }
    assert unexplained == set()


def test_every_documented_deviation_still_occurs(output_errors):
    stale = [
        (d["profile"], d["element"])
        for d in _documented()
        if not any(
            p == d["profile"] and e == d["element"] and m.startswith(d["message"])
            for p, e, m in output_errors
        )
    ]
    assert stale == []
