"""Conformance over the official R4 examples (npm hl7.fhir.r4.examples@4.0.1, CC0): every example loads
through the REST API and reads back unchanged; searches return exactly what an independent scan of the
JSON says they should. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from fhir_server.settings import Settings
from fhir_server.text import fold

DATA = Path(__file__).parent / "data" / "r4-examples.json.gz"
# Rejected by the server's validator although valid R4 (see the lead's validation notes); tracked, not hidden.
# Official examples that violate R4 itself: qs1 lacks linkIds; the TestScripts use the STU3 codes
# "xml"/"json" where R4 binds operation.accept/contentType (required) to MIME types.
KNOWN_REJECTED = {
    "Questionnaire/qs1",
    "TestScript/testscript-example",
    "TestScript/testscript-example-history",
    "TestScript/testscript-example-multisystem",
    "TestScript/testscript-example-readtest",
    "TestScript/testscript-example-search",
    "TestScript/testscript-example-update",
}


def examples() -> list[dict]:
    """The vendored official examples (clinical and administrative types, no conformance resources)."""
    return orjson.loads(gzip.decompress(DATA.read_bytes()))


def _strip_meta(res: dict) -> dict:
    res = dict(res)
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    res.pop("meta", None)
    if meta:
        res["meta"] = meta
    return res


@pytest.fixture
def settings(db_url) -> Settings:
    """Lenient referential integrity: the examples reference each other in any order, and resources
    that are not part of the set (this test is about loading and searching, not integrity)."""
    return Settings(database_url=db_url, referential_integrity="lenient")


@pytest_asyncio.fixture
async def loaded(client):
    """All examples PUT through the API; returns (client, accepted examples)."""
    accepted, rejected = [], set()
    for res in examples():
        resp = await client.put(f"/{res['resourceType']}/{res['id']}", json=res)
        if resp.status_code in (200, 201):
            accepted.append(res)
        else:
            rejected.add(f"{res['resourceType']}/{res['id']}")
    assert rejected <= KNOWN_REJECTED, sorted(rejected - KNOWN_REJECTED)
    return client, accepted


async def _ids(client, query: str) -> set[str]:
    found: set[str] = set()
    url: str | None = "/" + query + ("&" if "?" in query else "?") + "_count=200"
    while url:
        resp = await client.get(url)
        assert resp.status_code == 200, (query, resp.text[:300])
        bundle = resp.json()
        found |= {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", [])
            if e["search"]["mode"] == "match"
        }
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


def _codings(cc) -> list[dict]:
    return (cc or {}).get("coding", []) if isinstance(cc, dict) else []


async def test_examples_round_trip_and_search(loaded) -> None:
    client, accepted = loaded
    assert len(accepted) > 650
    by_type: dict[str, list[dict]] = {}
    for res in accepted:
        by_type.setdefault(res["resourceType"], []).append(res)

    # Read back unchanged (server-managed meta aside).
    for res in accepted:
        resp = await client.get(f"/{res['resourceType']}/{res['id']}")
        assert resp.status_code == 200
        assert _strip_meta(resp.json()) == _strip_meta(res), f"{res['resourceType']}/{res['id']}"

    def ref(res: dict) -> str:
        return f"{res['resourceType']}/{res['id']}"

    obs = by_type["Observation"]
    patients = by_type["Patient"]
    oracle: dict[str, set[str]] = {
        "Observation?code=http://loinc.org|85354-9": {
            ref(o)
            for o in obs
            if any(
                c.get("system") == "http://loinc.org" and c.get("code") == "85354-9"
                for c in _codings(o.get("code"))
            )
        },
        "Observation?code=http://loinc.org|15074-8": {
            ref(o) for o in obs if any(c.get("code") == "15074-8" for c in _codings(o.get("code")))
        },
        "Observation?subject=Patient/example": {
            ref(o) for o in obs if (o.get("subject") or {}).get("reference") == "Patient/example"
        },
        "Observation?value-quantity=gt100": {
            ref(o)
            for o in obs
            if isinstance((o.get("valueQuantity") or {}).get("value"), (int, float))
            and o["valueQuantity"]["value"] > 100
        },
        "Observation?status=final,amended": {ref(o) for o in obs if o.get("status") in ("final", "amended")},
        "Patient?gender=female": {ref(p) for p in patients if p.get("gender") == "female"},
        "Patient?birthdate=ge1960&birthdate=lt1980": {
            ref(p) for p in patients if "1960" <= p.get("birthDate", "")[:4] < "1980"
        },
        "Patient?family=van": {
            ref(p)
            for p in patients
            if any(fold(n.get("family", "")).startswith("van") for n in p.get("name", []))
        },
        "Patient?active=true": {ref(p) for p in patients if p.get("active") is True},
        "Condition?clinical-status=active": {
            ref(c)
            for c in by_type["Condition"]
            if any(x.get("code") == "active" for x in _codings(c.get("clinicalStatus")))
        },
        "MedicationRequest?intent=order": {
            ref(m) for m in by_type["MedicationRequest"] if m.get("intent") == "order"
        },
        "Encounter?subject=Patient/example": {
            ref(e)
            for e in by_type["Encounter"]
            if (e.get("subject") or {}).get("reference") == "Patient/example"
        },
        "Practitioner?name=adam": {
            ref(p)
            for p in by_type["Practitioner"]
            if any(
                fold(x).startswith("adam")
                for n in p.get("name", [])
                for x in [n.get("family", ""), *n.get("given", []), n.get("text", "")]
                if x
            )
        },
    }
    mismatches = {}
    for query, expected in oracle.items():
        got = await _ids(client, query)
        if got != expected:
            mismatches[query] = (sorted(got - expected), sorted(expected - got))
    assert mismatches == {}
    assert len(oracle["Observation?subject=Patient/example"]) > 5  # the oracle itself is not vacuous

    # Counts per type and the example patient's revinclude set.
    for rtype in ("Patient", "Observation", "Condition", "Organization"):
        total = (await client.get(f"/{rtype}?_summary=count")).json()["total"]
        assert total == len(by_type[rtype])
    bundle = (await client.get("/Patient?_id=example&_revinclude=Observation:subject&_count=1")).json()
    included = {
        f"Observation/{e['resource']['id']}" for e in bundle["entry"] if e["search"]["mode"] == "include"
    }
    assert included == oracle["Observation?subject=Patient/example"]
