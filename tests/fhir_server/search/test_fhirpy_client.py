"""A real FHIR client (fhirpy, async) against the server on a loopback port: search, paging, include."""

from __future__ import annotations

import httpx
import pytest
from fhirpy import AsyncFHIRClient

from tests.fhir_server.search.vn_data import ethnicity_param, resources, transaction


@pytest.fixture
def fhir_base(live_server: str) -> str:
    """The live server loaded with the Vietnamese dataset plus 30 extra patients for paging."""
    extra = [
        {
            "resourceType": "Patient",
            "id": f"vu{i:02d}",
            "name": [{"family": "Vũ", "given": [f"Minh{i:02d}"]}],
            "gender": "male",
        }
        for i in range(30)
    ]
    with httpx.Client(base_url=live_server, timeout=30) as http:
        assert http.put("/SearchParameter/vn-ethnicity", json=ethnicity_param()).status_code in (200, 201)
        assert http.post("/", json=transaction(resources() + extra)).status_code == 200
    return live_server


async def test_fhirpy_search_paging_include(fhir_base: str) -> None:
    client = AsyncFHIRClient(fhir_base, extra_headers={"Accept": "application/fhir+json"})
    found = await client.resources("Patient").search(name="nguyễn").fetch()
    assert sorted(p["id"] for p in found) == ["p1", "p2"]

    # fetch_all follows the server's next links (keyset page tokens) to the end.
    everyone = await client.resources("Patient").search(family="vu").limit(7).fetch_all()
    assert sorted(p["id"] for p in everyone) == [f"vu{i:02d}" for i in range(30)]

    bundle = (
        await client.resources("Observation")
        .search(subject="Patient/p1")
        .include("Observation", "subject")
        .sort("-date")
        .fetch_raw()
    )
    matches = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert matches == ["o2", "o1"] and included == ["p1"]

    count = await client.resources("Patient").search(gender="male").count()
    assert count == 32
    kinh = (
        await client.resources("Patient")
        .search(ethnicity="http://fhir.hl7.org.vn/core/CodeSystem/vn-ethnicity|01")
        .fetch()
    )
    assert [p["id"] for p in kinh] == ["p1"]
