"""Search by an identifier held at one hospital returns the person's records from every hospital."""

from __future__ import annotations

from fhir_server.identity.service import link_patients
from fhir_server.interactions import bundles

BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"


def _patient(res_id: str, card: str, facility: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "identifier": [
            {"system": BHYT, "value": card},
            {"system": f"http://fhir.hl7.org.vn/core/sid/mrn/{facility}", "value": res_id},
        ],
        "name": [{"text": "TRẦN THỊ MAI", "family": "TRẦN", "given": ["THỊ", "MAI"]}],
        "gender": "female",
        "birthDate": "1985-07-20",
    }


def _put(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"Patient/{r['id']}"}} for r in resources
        ],
    }


async def test_bhyt_search_through_the_link_set_finds_the_other_hospitals_record(client, store):
    # The card prefix changed between visits (benefit group DN -> HC); the 10-digit BHXH part did not.
    bundles.transaction(
        store,
        _put(
            _patient("bv-a-001", "DN4797912345678", "79001"), _patient("bv-b-777", "HC4797912345678", "01001")
        ),
    )
    link_patients(store, ["bv-a-001", "bv-b-777"])
    direct = (await client.get(f"Patient?identifier={BHYT}|DN4797912345678")).json()
    assert [e["resource"]["id"] for e in direct["entry"]] == ["bv-a-001"]
    linked = (
        await client.get(f"Person?patient.identifier={BHYT}|DN4797912345678&_include=Person:patient")
    ).json()
    patients = {e["resource"]["id"] for e in linked["entry"] if e["resource"]["resourceType"] == "Patient"}
    assert patients == {"bv-a-001", "bv-b-777"}
