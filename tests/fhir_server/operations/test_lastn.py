"""Observation/$lastn over HTTP on SQLite and PostgreSQL: newest N per code for one patient, with
category, code and date filters."""

from __future__ import annotations

import pytest

from tests.fhir_server.vn_data import patient

pytestmark = pytest.mark.asyncio

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
GLUCOSE, HBA1C, PULSE = "2345-7", "4548-4", "8867-4"


def _obs(subject: str, code: str, when: str, value: float, category: str = "laboratory") -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}], "text": "Xét nghiệm"},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "mmol/L"},
    }


@pytest.fixture
async def record(client) -> dict:
    """Two patients; the first has 3 glucose, 2 HbA1c and 1 pulse results over three days."""
    ids = {}
    for key, name, cccd in (
        ("an", "NGUYỄN VĂN AN", "079090001234"),
        ("binh", "TRẦN THỊ BÌNH", "079090005678"),
    ):
        r = await client.post("Patient", json=patient(name=name, cccd=cccd))
        ids[key] = r.json()["id"]
    an, binh = f"Patient/{ids['an']}", f"Patient/{ids['binh']}"
    rows = [
        ("g1", an, GLUCOSE, "2026-11-01T07:00:00+07:00", 5.1, "laboratory"),
        ("g3", an, GLUCOSE, "2026-11-03T07:00:00+07:00", 6.3, "laboratory"),
        ("g2", an, GLUCOSE, "2026-11-02T07:00:00+07:00", 5.8, "laboratory"),
        ("h1", an, HBA1C, "2026-10-01T07:00:00+07:00", 7.2, "laboratory"),
        ("h2", an, HBA1C, "2026-11-02T08:00:00+07:00", 6.9, "laboratory"),
        ("p1", an, PULSE, "2026-11-03T09:00:00+07:00", 78, "vital-signs"),
        ("other", binh, GLUCOSE, "2026-11-04T07:00:00+07:00", 9.9, "laboratory"),
    ]
    for label, subject, code, when, value, category in rows:
        r = await client.post("Observation", json=_obs(subject, code, when, value, category))
        assert r.status_code == 201, r.text
        ids[label] = r.json()["id"]
    return ids


def _labels(bundle: dict, ids: dict) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[e["resource"]["id"]] for e in bundle.get("entry", [])]


async def _lastn(client, **params) -> dict:
    r = await client.get("Observation/$lastn", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "searchset"
    return r.json()


async def test_default_is_the_newest_observation_of_each_code(client, record):
    bundle = await _lastn(client, patient=f"Patient/{record['an']}")
    assert sorted(_labels(bundle, record)) == ["g3", "h2", "p1"]
    assert bundle["total"] == 3


async def test_max_keeps_n_per_code_newest_first(client, record):
    bundle = await _lastn(client, patient=record["an"], max="2")
    labels = _labels(bundle, record)
    assert [x for x in labels if x.startswith("g")] == ["g3", "g2"]
    assert [x for x in labels if x.startswith("h")] == ["h2", "h1"]
    assert labels.index("g3") < labels.index("g2")


async def test_category_filter(client, record):
    bundle = await _lastn(client, subject=f"Patient/{record['an']}", category="vital-signs", max="5")
    assert _labels(bundle, record) == ["p1"]


async def test_code_filter(client, record):
    bundle = await _lastn(client, patient=record["an"], code=f"{LOINC}|{HBA1C}", max="5")
    assert _labels(bundle, record) == ["h2", "h1"]


async def test_date_filter(client, record):
    bundle = await _lastn(client, patient=record["an"], date="lt2026-11-02", max="3")
    assert sorted(_labels(bundle, record)) == ["g1", "h1"]


async def test_other_patients_observations_are_not_returned(client, record):
    bundle = await _lastn(client, patient=record["binh"], max="3")
    assert _labels(bundle, record) == ["other"]


async def test_post_with_parameters(client, record):
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": f"Patient/{record['an']}"}},
            {"name": "max", "valueInteger": 1},
            {"name": "code", "valueString": f"{LOINC}|{GLUCOSE}"},
        ],
    }
    r = await client.post("Observation/$lastn", json=body)
    assert r.status_code == 200, r.text
    assert _labels(r.json(), record) == ["g3"]


async def test_without_patient_is_400(client, record):
    r = await client.get("Observation/$lastn", params={"category": "laboratory"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["patient"]


async def test_max_must_be_positive(client, record):
    r = await client.get("Observation/$lastn", params={"patient": record["an"], "max": "0"})
    assert r.status_code == 400


async def test_unknown_search_parameter_is_400(client, record):
    r = await client.get("Observation/$lastn", params={"patient": record["an"], "nonsense": "1"})
    assert r.status_code == 400


async def test_capability_statement_lists_lastn(client):
    statement = (await client.get("metadata")).json()
    ops = statement["rest"][0].get("operation", [])
    for resource in statement["rest"][0]["resource"]:
        ops += resource.get("operation", [])
    assert any(op["name"] == "lastn" and op["definition"].endswith("Observation-lastn") for op in ops)


async def test_within_the_patient_compartment(client, record):
    r = await client.get(f"Patient/{record['an']}/Observation/$lastn", params={"category": "laboratory"})
    assert r.status_code == 200, r.text
    assert sorted(_labels(r.json(), record)) == ["g3", "h2"]
