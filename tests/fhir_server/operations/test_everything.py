"""Patient/$everything over HTTP on SQLite and PostgreSQL: the linked set, start/end, _type, _since,
keyset paging, POST Parameters, type level, errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fhir_server.operations import vn_record as rec

pytestmark = pytest.mark.asyncio


def _refs(bundle: dict) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])}


async def _get(client, path: str, **params) -> dict:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    return r.json()


async def test_linked_records_of_both_hospitals_are_returned(client, store):
    assert rec.load_and_link(store) == sorted([rec.PA, rec.PB])
    for start_from in (rec.PA, rec.PB):
        bundle = await _get(client, f"/Patient/{start_from}/$everything")
        got = _refs(bundle)
        assert bundle["type"] == "searchset" and bundle["total"] == len(got)
        assert rec.PERSON <= got and rec.SUPPORT <= got
        assert {r.split("/")[0] for r in got - rec.PERSON - rec.SUPPORT} <= {"Person"}  # the link set itself
        assert f"Patient/{rec.PC}" not in got and "Observation/obs-other" not in got
        modes = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}": e["search"]["mode"]
            for e in bundle["entry"]
        }
        assert modes["Organization/org-bach-mai"] == "include" and modes["Observation/obs-hba1c"] == "match"
        assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"  # patients come first
        assert bundle["entry"][0]["fullUrl"].startswith("http://test/fhir/Patient/")


async def test_linked_false_and_unlinked_patient_stay_with_their_own_record(client, store):
    rec.load_and_link(store)
    own = _refs(await _get(client, f"/Patient/{rec.PA}/$everything", _linked="false"))
    assert (
        "Observation/obs-glucose" in own
        and "Observation/obs-hba1c" not in own
        and f"Patient/{rec.PB}" not in own
    )
    other = _refs(await _get(client, f"/Patient/{rec.PC}/$everything"))
    assert other == {f"Patient/{rec.PC}", "Observation/obs-other", "Organization/org-cho-ray"}


async def test_start_end_uses_care_dates_and_keeps_undated_resources(client, store):
    rec.load_and_link(store)
    got = _refs(await _get(client, f"/Patient/{rec.PA}/$everything", start="2024-06-01", end="2024-12-31"))
    assert {
        "Encounter/enc-bm-1",
        "Observation/obs-hba1c",
        "Appointment/appt-bm",
        "ServiceRequest/ref-cr-bm",
    } <= got
    assert "Condition/cond-i10" in got  # no date at all: still the patient's
    assert {
        "Encounter/enc-cr-1",
        "Observation/obs-glucose",
        "Condition/cond-e11",
        "MedicationRequest/rx-metformin",
    }.isdisjoint(got)
    assert {f"Patient/{rec.PA}", f"Patient/{rec.PB}"} <= got
    early = _refs(await _get(client, f"/Patient/{rec.PB}/$everything", end="2024-03"))
    assert "Observation/obs-glucose" in early and "Observation/obs-hba1c" not in early
    # An inpatient stay overlapping the range counts, even if it started before.
    overlap = _refs(
        await _get(client, f"/Patient/{rec.PB}/$everything", start="2024-09-12", end="2024-09-12")
    )
    assert "Encounter/enc-bm-1" in overlap and "Observation/obs-hba1c" not in overlap


async def test_type_and_since(client, store):
    rec.load_and_link(store)
    got = _refs(await _get(client, f"/Patient/{rec.PA}/$everything", _type="Observation,Condition"))
    assert got == {
        "Observation/obs-glucose",
        "Observation/obs-hba1c",
        "Condition/cond-e11",
        "Condition/cond-i10",
    }
    again = await client.get(f"/Patient/{rec.PA}/$everything?_type=Observation&_type=Organization")
    assert {r.split("/")[0] for r in _refs(again.json())} == {"Observation", "Organization"}
    future = _refs(await _get(client, f"/Patient/{rec.PA}/$everything", _since="2999-01-01T00:00:00Z"))
    assert future == {f"Patient/{rec.PA}", f"Patient/{rec.PB}"}
    past = _refs(await _get(client, f"/Patient/{rec.PA}/$everything", _since="2000-01-01T00:00:00Z"))
    assert rec.PERSON <= past


async def test_keyset_paging_with_next_links(client, store):
    rec.load_and_link(store)
    full = _refs(await _get(client, f"/Patient/{rec.PA}/$everything"))
    seen: list[str] = []
    url = f"/Patient/{rec.PA}/$everything?_count=3"
    pages = 0
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert len(bundle.get("entry", [])) <= 3 and bundle["total"] == len(full)
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else None
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["_count"] == ["3"] and "_page_token" in query and "_offset" not in query
        pages += 1
    assert pages == -(-len(full) // 3)
    assert len(seen) == len(set(seen)) and set(seen) == full
    bad = await client.get(f"/Patient/{rec.PA}/$everything?_page_token=not-a-token")
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    count_only = await _get(client, f"/Patient/{rec.PA}/$everything", _count="0")
    assert count_only["total"] == len(full) and "entry" not in count_only


async def test_post_parameters_and_type_level(client, store):
    rec.load_and_link(store)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDate": "2024-09-01"},
            {"name": "_type", "valueCode": "Observation,Encounter"},
        ],
    }
    r = await client.post(f"/Patient/{rec.PA}/$everything", json=body)
    assert r.status_code == 200, r.text
    assert _refs(r.json()) == {"Observation/obs-hba1c", "Encounter/enc-bm-1"}
    r = await client.post(
        "/Patient/$everything",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": f"Patient/{rec.PB}"}},
                {"name": "_type", "valueCode": "Condition"},
            ],
        },
    )
    assert r.status_code == 200 and _refs(r.json()) == {"Condition/cond-e11", "Condition/cond-i10"}
    r = await client.get("/Patient/$everything", params={"patient": f"Patient/{rec.PA}", "_type": "Patient"})
    assert _refs(r.json()) == {f"Patient/{rec.PA}", f"Patient/{rec.PB}"}
    r = await client.get("/Patient/$everything")
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


async def test_errors_are_operation_outcomes(client, store):
    rec.load_and_link(store)
    r = await client.get("/Patient/khong-ton-tai/$everything")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    for params in (
        {"start": "01/03/2024"},
        {"_type": "Khong"},
        {"_count": "-1"},
        {"_since": "hôm qua"},
        {"start": "2024-12-01", "end": "2024-01-01"},
        {"khong": "1"},
    ):
        r = await client.get(f"/Patient/{rec.PA}/$everything", params=params)
        assert r.status_code == 400, params
        assert r.json()["resourceType"] == "OperationOutcome"
    r = await client.post(f"/Patient/{rec.PA}/$everything", json={"resourceType": "Patient"})
    assert r.status_code == 400
    await client.delete(f"/Patient/{rec.PC}")
    r = await client.get(f"/Patient/{rec.PC}/$everything")
    assert r.status_code == 410 and r.json()["resourceType"] == "OperationOutcome"


async def test_capability_statement_lists_the_operation(client):
    r = await client.get("/metadata")
    patient = next(x for x in r.json()["rest"][0]["resource"] if x["type"] == "Patient")
    ops = {o["name"]: o["definition"] for o in patient.get("operation", [])}
    assert ops.get("everything") == "http://hl7.org/fhir/OperationDefinition/Patient-everything"


def _two_hospital_visits():
    from adapters.synth import generate

    for seed in range(50):  # the first deterministic seed whose one person visits both hospitals
        ds = generate(hospitals=2, visits=4, seed=seed, persons=1)
        if len(ds.persons[0].mrn) == 2:
            return ds
    raise AssertionError("no seed with two hospitals")


async def test_synthetic_qd130_visits_at_two_hospitals(client, store):
    from adapters.ids import deterministic_id
    from adapters.pipeline import ingest
    from fhir_server.identity.service import link_all

    ds = _two_hospital_visits()
    for v in ds.visits:
        assert ingest(store, v.xml, source="test", adapter="qd130").status == "processed"
    link_all(store)
    (fac_a, mrn_a), (fac_b, _) = sorted(ds.persons[0].mrn.items())
    bundle = await _get(
        client, f"/Patient/{deterministic_id('Patient', fac_a, mrn_a)}/$everything", _count="1000"
    )
    encounters = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert len(encounters) == len(ds.visits)
    ma_lk = {
        i["value"] for enc in encounters for i in enc.get("identifier", []) if i["system"].endswith("/ma-lk")
    }
    assert ma_lk == {v.ma_lk for v in ds.visits}
    assert {v.facility for v in ds.visits} == {fac_a, fac_b}
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Observation", "Condition", "MedicationRequest", "Organization"} <= types
