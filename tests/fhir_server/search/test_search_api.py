"""Search over HTTP, table-driven per parameter type and modifier, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import pytest_asyncio

from fhir_server.interactions import bundles
from fhir_server.search.registry import get_registry
from tests.fhir_server.search.cases import ids, mismatches
from tests.fhir_server.search.vn_data import (
    CCCD,
    ETHNICITY_SYSTEM,
    LOINC,
    UCUM,
    ethnicity_param,
    resources,
    transaction,
)


@pytest_asyncio.fixture
async def loaded(client):
    """The client over a database holding the Vietnamese dataset (custom ethnicity param registered first)."""
    resp = await client.put("/SearchParameter/vn-ethnicity", json=ethnicity_param())
    assert resp.status_code in (200, 201), resp.text
    resp = await client.post("/", json=transaction(resources()))
    assert resp.status_code == 200, resp.text
    return client


CASES = [
    # string: accent- and case-insensitive prefix by default
    ("Patient?name=nguyen", {"p1", "p2"}),
    ("Patient?name=NGUYỄN", {"p1", "p2"}),
    ("Patient?name=nguyen van", {"p1"}),
    ("Patient?name=nguyễn thị bình", {"p2"}),
    ("Patient?name:exact=Nguyễn", {"p1"}),
    ("Patient?name:exact=nguyễn", set()),
    ("Patient?name:contains=thi", {"p2", "p4"}),
    ("Patient?family=tran", {"p3"}),
    ("Patient?given=duc", {"p3"}),
    ("Patient?address-city=ha noi", {"p1"}),
    ("Patient?address=hồ chí", {"p2"}),
    ("Patient?name=nguyen,tran", {"p1", "p2", "p3"}),
    ("Patient?name=nguyen&gender=female", {"p2"}),
    # token
    (f"Patient?identifier={CCCD}|001085012345", {"p1"}),
    ("Patient?identifier=001085012345", {"p1"}),
    (f"Patient?identifier={CCCD}|", {"p1", "p2", "p3"}),
    ("Patient?identifier=|001085012345", set()),
    ("Patient?identifier:missing=true", {"p4"}),
    ("Patient?identifier:missing=false", {"p1", "p2", "p3"}),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|079190000111", {"p2"}),
    ("Patient?gender=female", {"p2", "p4"}),
    ("Patient?gender:not=female", {"p1", "p3"}),
    ("Patient?gender=male,female", {"p1", "p2", "p3", "p4"}),
    (f"Patient?ethnicity={ETHNICITY_SYSTEM}|01", {"p1"}),
    ("Patient?ethnicity:text=tay", {"p2"}),
    (f"Observation?code={LOINC}|29463-7", {"o1", "o2"}),
    ("Observation?code=|29463-7", set()),
    ("Observation?code:text=can nang", {"o1", "o2"}),
    ("Observation?code:text=body", {"o1", "o2"}),
    ("Condition?code:text=dai thao", {"c1"}),
    ("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", {"e1"}),
    ("Patient?_id=p1,p2", {"p1", "p2"}),
    # date (precision ranges, prefixes, time zones)
    ("Patient?birthdate=1985", {"p1"}),
    ("Patient?birthdate=1985-03", {"p1"}),
    ("Patient?birthdate=ge1990-01-01", {"p2", "p4"}),
    ("Patient?birthdate=lt1980", {"p3"}),
    ("Patient?birthdate=ne1985-03-12", {"p2", "p3", "p4"}),
    ("Patient?birthdate=sa2000", {"p4"}),
    ("Patient?birthdate=eb1980", {"p3"}),
    ("Patient?birthdate=ge1980&birthdate=lt2000", {"p1", "p2"}),
    ("Observation?date=2023-12-31", {"o4"}),
    ("Observation?date=2024", {"o1", "o2", "o3"}),
    ("Observation?date=2024-01-15T01:30:00Z", {"o1"}),
    ("Encounter?date=2024-01-16", set()),
    ("Encounter?date=ge2024-01-16", {"e1"}),
    ("Encounter?date=le2024-01-15", {"e1"}),
    ("Patient?_lastUpdated=gt2000-01-01", {"p1", "p2", "p3", "p4"}),
    ("Patient?_lastUpdated=lt2000-01-01", set()),
    # quantity and composite
    ("Observation?value-quantity=65", {"o1"}),
    ("Observation?value-quantity=gt66", {"o2"}),
    (f"Observation?value-quantity=67.5|{UCUM}|kg", {"o2"}),
    (f"Observation?value-quantity=le7.2|{UCUM}|%", {"o4"}),
    ("Observation?value-quantity=7.2||%", {"o4"}),
    ("Observation?value-quantity=ap65", {"o1", "o2"}),
    (f"Observation?component-code-value-quantity={LOINC}|8480-6$gt130", {"o3"}),
    (f"Observation?component-code-value-quantity={LOINC}|8480-6$lt130", set()),
    # reference, chaining, reverse chaining
    ("Observation?subject=Patient/p1", {"o1", "o2"}),
    ("Observation?patient=p1", {"o1", "o2"}),
    ("Observation?subject:Patient=p2", {"o3"}),
    ("Observation?subject=http://test/fhir/Patient/p2", {"o3"}),
    ("Observation?performer=Practitioner/pr1", {"o1"}),
    ("Patient?organization:identifier=http://fhir.hl7.org.vn/core/sid/ma-cskcb|01929", set()),
    ("Observation?subject:Patient.name=nguyen van", {"o1", "o2"}),
    ("Observation?subject:Patient.birthdate=1990-07-01", {"o3"}),
    ("Observation?patient.organization.name=benh vien bach", {"o1", "o2"}),
    ("Patient?organization.identifier=01929", {"p1"}),
    ("Patient?_has:Observation:patient:code=http://loinc.org|29463-7", {"p1"}),
    ("Patient?_has:Condition:subject:code=E11", {"p1"}),
    ("Patient?_has:Encounter:subject:_has:Condition:encounter:code=E11", {"p1"}),
    ("Condition?encounter.subject:Patient.name=nguyen", {"c1"}),
]


async def test_search_cases(loaded) -> None:
    """Every CASES row against one loaded database (one load per backend keeps the suite fast)."""
    assert await mismatches(loaded, CASES) == []


async def test_post_search_form(loaded) -> None:
    resp = await loaded.post(
        "/Patient/_search",
        content="name=nguyen&gender=male",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert ids(resp.json()) == {"p1"}


async def test_system_search_with_type(loaded) -> None:
    resp = await loaded.get("/?_type=Patient,Observation&_id=p1,o1,pr1")
    assert ids(resp.json()) == {"p1", "o1"}


async def test_unknown_param_reported_or_rejected(loaded) -> None:
    resp = await loaded.get("/Patient?foo=bar&_text=x&gender=male")
    bundle = resp.json()
    assert ids(bundle) == {"p1", "p3"}
    outcome = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    text = " ".join(i["diagnostics"] for i in outcome[0]["issue"])
    assert "'foo'" in text and "'_text'" in text
    strict = await loaded.get("/Patient?foo=bar", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "query",
    [
        "Patient?identifier:in=http://x/vs",
        "Patient?name:foo=x",
        "Patient?birthdate=not-a-date",
        "Observation?value-quantity=abc",
        "Patient?_count=x",
        "Patient?_summary=maybe",
    ],
)
async def test_bad_requests(loaded, query: str) -> None:
    resp = await loaded.get("/" + query)
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"


async def test_unknown_type_is_404(loaded) -> None:
    assert (await loaded.get("/Bogus?name=x")).status_code == 404


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("birthdate", ["p3", "p1", "p2", "p4"]),
        ("-birthdate", ["p4", "p2", "p1", "p3"]),
        ("gender,-birthdate", ["p4", "p2", "p1", "p3"]),
        ("family,given", ["p4", "p1", "p2", "p3"]),
        ("-_id", ["p4", "p3", "p2", "p1"]),
    ],
)
async def test_sort(loaded, sort: str, order: list[str]) -> None:
    bundle = (await loaded.get(f"/Patient?_sort={sort}")).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == order


async def test_include_revinclude_iterate(loaded) -> None:
    b = (
        await loaded.get("/Observation?_id=o1&_include=Observation:subject&_include=Observation:performer")
    ).json()
    assert ids(b) == {"o1"} and ids(b, "include") == {"p1", "pr1"}
    b = (await loaded.get("/Observation?_id=o1&_include=Observation:*")).json()
    assert ids(b, "include") == {"p1", "pr1"}
    b = (await loaded.get("/Observation?_id=o1&_include=Observation:subject:Practitioner")).json()
    assert ids(b, "include") == set()
    b = (await loaded.get("/Patient?_id=p1&_revinclude=Observation:subject")).json()
    assert ids(b) == {"p1"} and ids(b, "include") == {"o1", "o2"}
    b = (
        await loaded.get(
            "/Observation?_id=o1&_include=Observation:subject&_include:iterate=Patient:organization"
        )
    ).json()
    assert ids(b, "include") == {"p1", "org1"}
    b = (
        await loaded.get(
            "/Encounter?_id=e1&_revinclude=Condition:encounter&_include:iterate=Condition:subject"
        )
    ).json()
    assert ids(b, "include") == {"c1", "p1"}


async def test_summary_elements_total(loaded) -> None:
    b = (await loaded.get("/Patient?_summary=count")).json()
    assert b["total"] == 4 and "entry" not in b
    b = (await loaded.get("/Patient?_id=p1&_summary=true")).json()
    p = b["entry"][0]["resource"]
    assert "extension" not in p and p["name"][0]["family"] == "Nguyễn"
    assert any(t["code"] == "SUBSETTED" for t in p["meta"]["tag"])
    b = (await loaded.get("/Patient?_id=p1&_elements=gender,birthDate")).json()
    assert set(b["entry"][0]["resource"]) == {"resourceType", "id", "meta", "gender", "birthDate"}
    b = (await loaded.get("/Observation?_id=o1&_summary=data")).json()
    assert "valueQuantity" in b["entry"][0]["resource"]
    b = (await loaded.get("/Patient?_count=1&_total=accurate")).json()
    assert b["total"] == 4 and len(b["entry"]) == 1
    b = (await loaded.get("/Patient?_count=1&_total=none")).json()
    assert "total" not in b
    b = (await loaded.get("/Patient")).json()
    assert b["total"] == 4  # small result: counted for free


async def test_paging_keyset_survives_writes(loaded) -> None:
    people = [
        {
            "resourceType": "Patient",
            "id": f"pg{i:02d}",
            "name": [{"family": "Phạm", "given": [f"Tên{i:02d}"]}],
            "birthDate": f"19{50 + i}-01-01",
        }
        for i in range(25)
    ]
    assert (await loaded.post("/", json=transaction(people))).status_code == 200
    url = "/Patient?family=pham&_count=10&_sort=-birthdate"
    first = (await loaded.get(url)).json()
    seen = [e["resource"]["id"] for e in first["entry"]]
    assert seen == [f"pg{i:02d}" for i in range(24, 14, -1)]
    # A write between pages (one sorting before the cursor, one after) must not shift the pages.
    extra = [
        {
            "resourceType": "Patient",
            "id": "pgnew-early",
            "name": [{"family": "Phạm"}],
            "birthDate": "1999-06-01",
        },
        {
            "resourceType": "Patient",
            "id": "pgnew-late",
            "name": [{"family": "Phạm"}],
            "birthDate": "1900-06-01",
        },
    ]
    assert (await loaded.post("/", json=transaction(extra))).status_code == 200
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["self"].startswith("http://test/fhir/Patient?")
    page = first
    while "next" in {link["relation"] for link in page["link"]}:
        nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
        page = (await loaded.get(nxt)).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(seen) == len(set(seen))
    assert seen[:25] == [f"pg{i:02d}" for i in range(24, -1, -1)] and seen[25:] == ["pgnew-late"]
    prev = next(link["url"] for link in page["link"] if link["relation"] == "previous")
    back = (await loaded.get(prev)).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [f"pg{i:02d}" for i in range(14, 4, -1)]


async def test_deleted_and_updated_resources(loaded) -> None:
    assert (await loaded.delete("/Patient/p4")).status_code in (200, 204)
    assert ids((await loaded.get("/Patient?gender=female")).json()) == {"p2"}
    p1 = (await loaded.get("/Patient/p1")).json()
    p1["name"][0]["family"] = "Hoàng"
    p1["name"][0]["text"] = "Hoàng Văn An"
    assert (await loaded.put("/Patient/p1", json=p1)).status_code == 200
    assert ids((await loaded.get("/Patient?family=nguyen")).json()) == {"p2"}
    assert ids((await loaded.get("/Patient?family=hoang")).json()) == {"p1"}


async def test_find_for_conditional_ops(store) -> None:
    from fhir_server.errors import FhirError

    bundles.transaction(store, transaction(resources()))
    assert store.find("Patient", [("identifier", f"{CCCD}|079190000111")]) == ["p2"]
    assert store.find("Patient", [("name", "nobody")]) == []
    with pytest.raises(FhirError):
        store.find("Patient", [("no-such-param", "x")])
    assert {"name", "identifier", "_id", "_lastUpdated"} <= {
        p["name"] for p in get_registry().capability("Patient")
    }


async def test_misspelt_parameter_is_named_in_an_outcome_entry_and_left_out_of_the_self_link(loaded) -> None:
    # "identifer" (typo): lenient handling searches without it, and says so in the Bundle.
    bundle = (await loaded.get("/Patient?identifer=079090001234&gender=male")).json()
    assert ids(bundle) == {"p1", "p3"}
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1 and "'identifer'" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "gender=male" in self_link and "identifer" not in self_link
    strict = await loaded.get("/Patient?identifer=079090001234", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["identifer"]
