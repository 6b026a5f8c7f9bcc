"""Derived search parameters (search/derived.py): no index rows are written for them, yet every kind of
search that names one (values, :missing, :identifier, chains, _has, _include/_revinclude, _sort,
$everything) answers as if its own rows were there. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest_asyncio
from sqlalchemy import and_, select, tuple_

from fhir_server.search.derived import Source, sources
from fhir_server.search.indexer import Indexer
from fhir_server.search.registry import Registry, get_registry
from fhir_server.storage.sql.index_tables import ALL_TABLES
from tests.fhir_server.search.cases import ids, mismatches
from tests.fhir_server.search.vn_data import CCCD, LOINC, UCUM, transaction

SNOMED = "http://snomed.info/sct"
DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
POSITIVE = {"coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}], "text": "Dương tính"}


def _coding(system: str, code: str, text: str | None = None) -> dict:
    """A CodeableConcept with one coding."""
    concept: dict = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def _kg(value: float) -> dict:
    return {"value": value, "unit": "kg", "system": UCUM, "code": "kg"}


def _mmhg(value: float) -> dict:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def _obs(oid: str, subject: dict, code: dict, **extra) -> dict:
    """An Observation with a subject Reference and a code."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": subject,
        "code": code,
        **extra,
    }


def _ref(target: str) -> dict:
    return {"reference": target}


def dataset() -> list[dict]:
    """Two patients; observations about them, about a Group, about a Device and about an identifier."""
    return [
        {"resourceType": "Organization", "id": "org-hue", "name": "Bệnh viện Trung ương Huế"},
        {
            "resourceType": "Patient",
            "id": "pa",
            "name": [{"family": "Lê", "given": ["Văn", "An"]}],
            "managingOrganization": _ref("Organization/org-hue"),
        },
        {"resourceType": "Patient", "id": "pb", "name": [{"family": "Phạm", "given": ["Thị", "Bích"]}]},
        {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Trần", "given": ["Hùng"]}]},
        {"resourceType": "RelatedPerson", "id": "rp1", "patient": _ref("Patient/pa")},
        {"resourceType": "Group", "id": "g1", "type": "person", "actual": True},
        {"resourceType": "Device", "id": "d1"},
        # Blood pressure panel: the values are in the components only.
        _obs(
            "o-bp",
            _ref("Patient/pa"),
            _coding(LOINC, "85354-9", "Huyết áp"),
            component=[
                {"code": _coding(LOINC, "8480-6"), "valueQuantity": _mmhg(140)},
                {"code": _coding(LOINC, "8462-4"), "valueQuantity": _mmhg(90)},
            ],
        ),
        _obs("o-wt", _ref("Patient/pa"), _coding(LOINC, "29463-7"), valueQuantity=_kg(3)),
        _obs("o-wt-b", _ref("Patient/pb"), _coding(LOINC, "29463-7"), valueQuantity=_kg(52)),
        # A positive test result for pb, plus a panel whose component says the same and one is absent.
        _obs("o-hiv", _ref("Patient/pb"), _coding(LOINC, "75622-1"), valueCodeableConcept=POSITIVE),
        _obs(
            "o-panel",
            _ref("Patient/pb"),
            _coding(LOINC, "24357-6"),
            component=[
                {"code": _coding(LOINC, "5796-8"), "valueCodeableConcept": POSITIVE},
                {"code": _coding(LOINC, "5797-6"), "dataAbsentReason": _coding(DAR, "asked-unknown")},
            ],
        ),
        # Subjects that are not Patients: these must never count as `patient`.
        _obs("o-group", _ref("Group/g1"), _coding(LOINC, "29463-7"), valueQuantity=_kg(70)),
        _obs(
            "o-dev",
            _ref("Device/d1"),
            _coding(LOINC, "8867-4"),
            dataAbsentReason=_coding(DAR, "asked-unknown"),
        ),
        # A subject known only by identifier (typed Patient), and one with a reference and an identifier.
        _obs(
            "o-ident",
            {"type": "Patient", "identifier": {"system": CCCD, "value": "046090001234"}},
            _coding(LOINC, "8310-5"),
        ),
        _obs(
            "o-both",
            {"reference": "Patient/pb", "identifier": {"system": CCCD, "value": "079190000111"}},
            _coding(LOINC, "8310-5"),
        ),
        {
            "resourceType": "Condition",
            "id": "c-pa",
            "subject": _ref("Patient/pa"),
            "code": _coding("http://hl7.org/fhir/sid/icd-10", "I10", "Tăng huyết áp"),
        },
        {
            "resourceType": "Condition",
            "id": "c-group",
            "subject": _ref("Group/g1"),
            "code": _coding("http://hl7.org/fhir/sid/icd-10", "I10"),
        },
        {
            "resourceType": "Encounter",
            "id": "e-pa",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": _ref("Patient/pa"),
            "participant": [
                {"individual": _ref("Practitioner/pr1")},
                {"individual": _ref("RelatedPerson/rp1")},
            ],
        },
    ]


@pytest_asyncio.fixture
async def loaded(client):
    """The client over a database holding `dataset()`, written through the real app."""
    resp = await client.post("/", json=transaction(dataset()))
    assert resp.status_code == 200, resp.text
    return client


OF_PA = {"o-bp", "o-wt"}
OF_PB = {"o-wt-b", "o-hiv", "o-panel", "o-both"}
ALL_OBS = OF_PA | OF_PB | {"o-group", "o-dev", "o-ident"}

CASES = [
    # combo-code = code | component.code
    (f"Observation?combo-code={LOINC}|85354-9", {"o-bp"}),
    (f"Observation?combo-code={LOINC}|8480-6", {"o-bp"}),
    ("Observation?combo-code=8462-4,75622-1", {"o-bp", "o-hiv"}),
    ("Observation?combo-code=29463-7", {"o-wt", "o-wt-b", "o-group"}),
    ("Observation?combo-code:text=huyet ap", {"o-bp"}),
    ("Observation?combo-code:not=29463-7", ALL_OBS - {"o-wt", "o-wt-b", "o-group"}),
    ("Observation?code=8480-6", set()),  # the sources keep their own meaning
    # combo-value-quantity = value | component.value (Quantity)
    ("Observation?combo-value-quantity=gt5", {"o-bp", "o-wt-b", "o-group"}),
    ("Observation?combo-value-quantity=lt100", {"o-bp", "o-wt", "o-wt-b", "o-group"}),
    (f"Observation?combo-value-quantity=140|{UCUM}|mm[Hg]", {"o-bp"}),
    ("Observation?combo-value-quantity:missing=false", {"o-bp", "o-wt", "o-wt-b", "o-group"}),
    ("Observation?value-quantity=gt5", {"o-wt-b", "o-group"}),
    # composites: both source composites count
    ("Observation?combo-code-value-quantity=8480-6$gt130", {"o-bp"}),
    ("Observation?combo-code-value-quantity=29463-7$gt50", {"o-wt-b", "o-group"}),
    ("Observation?combo-code-value-quantity=8462-4$gt100", set()),
    (f"Observation?combo-code-value-concept=75622-1${SNOMED}|10828004", {"o-hiv"}),
    (f"Observation?combo-code-value-concept=5796-8${SNOMED}|10828004", {"o-panel"}),
    # combo-value-concept and combo-data-absent-reason
    (f"Observation?combo-value-concept={SNOMED}|10828004", {"o-hiv", "o-panel"}),
    ("Observation?combo-data-absent-reason=asked-unknown", {"o-dev", "o-panel"}),
    ("Observation?data-absent-reason=asked-unknown", {"o-dev"}),
    # patient = subject.where(resolve() is Patient)
    ("Observation?patient=Patient/pa", OF_PA),
    ("Observation?patient=pb", OF_PB),
    ("Observation?patient:Patient=pa", OF_PA),
    ("Observation?patient=Group/g1", set()),
    ("Observation?patient=g1", set()),
    ("Observation?subject=Group/g1", {"o-group"}),
    ("Observation?patient:missing=true", {"o-group", "o-dev", "o-ident"}),
    ("Observation?patient:missing=false", OF_PA | OF_PB),
    ("Observation?patient.name=bich", OF_PB),
    ("Observation?patient:Patient.name=le van", OF_PA),
    ("Observation?patient._id=pa", OF_PA),
    ("Observation?patient=Patient/pa&combo-code=8480-6", {"o-bp"}),
    ("Condition?patient=pa", {"c-pa"}),
    ("Condition?patient:missing=true", {"c-group"}),
    ("Condition?patient.name=le", {"c-pa"}),
    # patient:identifier reads subject:identifier rows. Those carry no target type, so a subject
    # identifier that names no type or another type would match too (see derived.param_clause).
    (f"Observation?patient:identifier={CCCD}|046090001234", {"o-ident"}),
    (f"Observation?patient:identifier={CCCD}|079190000111", {"o-both"}),
    (f"Observation?subject:identifier={CCCD}|079190000111", {"o-both"}),
    # _has through a derived reference, with a derived inner parameter too
    ("Patient?_has:Observation:patient:code=85354-9", {"pa"}),
    ("Patient?_has:Observation:patient:combo-code=8462-4", {"pa"}),
    ("Patient?_has:Observation:patient:combo-value-quantity=gt50", {"pa", "pb"}),
    ("Patient?_has:Condition:patient:code=I10", {"pa"}),
    ("Group?_has:Observation:patient:code=29463-7", set()),
    # Encounter practitioner = participant.individual.where(resolve() is Practitioner)
    ("Encounter?practitioner=Practitioner/pr1", {"e-pa"}),
    ("Encounter?practitioner=rp1", set()),
    ("Encounter?participant=RelatedPerson/rp1", {"e-pa"}),
    ("Encounter?patient=pa", {"e-pa"}),
    # exact duplicates: Patient phonetic = name
    ("Patient?phonetic=pham", {"pb"}),
    ("Patient?phonetic:exact=Lê", {"pa"}),
]


async def test_derived_search_cases(loaded) -> None:
    """Every CASES row against one loaded database."""
    assert await mismatches(loaded, CASES) == []


async def test_include_and_revinclude_through_derived_reference(loaded) -> None:
    b = (await loaded.get("/Observation?_id=o-bp,o-group,o-dev&_include=Observation:patient")).json()
    assert ids(b) == {"o-bp", "o-group", "o-dev"} and ids(b, "include") == {"pa"}
    b = (await loaded.get("/Observation?_id=o-group&_include=Observation:subject")).json()
    assert ids(b, "include") == {"g1"}  # the source parameter still includes non-Patient subjects
    b = (await loaded.get("/Observation?_id=o-bp&_include=Observation:patient:Group")).json()
    assert ids(b, "include") == set()
    b = (await loaded.get("/Patient?_id=pa&_revinclude=Observation:patient")).json()
    assert ids(b) == {"pa"} and ids(b, "include") == OF_PA
    b = (await loaded.get("/Group?_id=g1&_revinclude=Observation:patient")).json()
    assert ids(b, "include") == set()
    b = (await loaded.get("/Group?_id=g1&_revinclude=Observation:subject")).json()
    assert ids(b, "include") == {"o-group"}
    # iterate: observation -> its patient -> that patient's conditions, organization
    b = (
        await loaded.get(
            "/Observation?_id=o-bp&_include=Observation:patient"
            "&_revinclude:iterate=Condition:patient&_include:iterate=Patient:organization"
        )
    ).json()
    assert ids(b, "include") == {"pa", "c-pa", "org-hue"}
    # any source type: each type's `patient` is resolved for that type
    b = (await loaded.get("/Patient?_id=pa&_revinclude=*:patient")).json()
    assert ids(b, "include") == OF_PA | {"c-pa", "e-pa", "rp1"}
    b = (await loaded.get("/Observation?_id=o-bp,o-group&_include=*:patient")).json()
    assert ids(b, "include") == {"pa"}


async def test_sort_by_derived_parameters(loaded) -> None:
    b = (await loaded.get("/Observation?_sort=patient,_id")).json()
    got = [e["resource"]["id"] for e in b["entry"]]
    # pa's, then pb's, then those without a Patient subject (missing values sort last)
    assert got == sorted(OF_PA) + sorted(OF_PB) + sorted({"o-dev", "o-group", "o-ident"})
    b = (
        await loaded.get("/Observation?combo-value-quantity:missing=false&_sort=-combo-value-quantity")
    ).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["o-bp", "o-group", "o-wt-b", "o-wt"]


async def test_everything_follows_derived_compartment_parameters(loaded) -> None:
    """Condition and Encounter are in the Patient compartment through their (derived) `patient`."""
    resp = await loaded.get("/Patient/pa/$everything")
    assert resp.status_code == 200, resp.text
    got = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in resp.json()["entry"]}
    assert {"Condition/c-pa", "Encounter/e-pa", "Observation/o-bp", "RelatedPerson/rp1"} <= got
    assert not {"Condition/c-group", "Observation/o-group", "Observation/o-wt-b"} & got


async def test_capability_statement_lists_derived_parameters(loaded) -> None:
    cs = (await loaded.get("/metadata")).json()
    by_type = {r["type"]: {p["name"] for p in r.get("searchParam", [])} for r in cs["rest"][0]["resource"]}
    assert {
        "combo-code",
        "combo-code-value-quantity",
        "combo-value-quantity",
        "patient",
        "subject",
    } <= by_type["Observation"]
    assert {"patient", "practitioner"} <= by_type["Encounter"]


async def test_no_index_rows_for_derived_parameters(loaded, store) -> None:
    """The point of the change: derived parameters cost no rows (nor :identifier companions)."""
    registry = get_registry()
    derived = {
        (rtype, code + suffix)
        for rtype, params in registry.by_type.items()
        for code, param in params.items()
        if rtype in param.derived_from
        for suffix in ("", ":identifier", ":of-type")
    }
    present: dict[tuple[str, str], int] = {}
    with store.engine.connect() as conn:
        for table in ALL_TABLES:
            for rtype, param in conn.execute(select(table.c.res_type, table.c.param)):
                present[(rtype, param)] = present.get((rtype, param), 0) + 1
            hits = conn.execute(
                select(table.c.param).where(
                    and_(tuple_(table.c.res_type, table.c.param).in_(sorted(derived)))
                )
            ).all()
            assert hits == [], (table.name, hits)
    assert ("Observation", "combo-code") in derived and ("Observation", "patient") in derived
    # The sources are written (9 codes, one with a text row; 4 component codes; 8 literal subjects).
    assert present[("Observation", "code")] == 10 and present[("Observation", "component-code")] == 4
    assert present[("Observation", "subject")] == 8 and present[("Observation", "subject:identifier")] == 2
    assert present[("Condition", "subject")] == 2 and present[("Patient", "name")] > 0
    assert ("Observation", "combo-code") not in present and ("Patient", "phonetic") not in present


# -- the rule, without a database ------------------------------------------------------------------------
def test_derivations_read_from_the_official_expressions() -> None:
    registry = get_registry()
    expect = {
        ("Observation", "combo-code"): {Source("code"), Source("component-code")},
        ("Observation", "combo-code-value-quantity"): {
            Source("code-value-quantity"),
            Source("component-code-value-quantity"),
        },
        ("Observation", "combo-code-value-concept"): {
            Source("code-value-concept"),
            Source("component-code-value-concept"),
        },
        ("Observation", "combo-value-quantity"): {
            Source("value-quantity"),
            Source("component-value-quantity"),
        },
        ("Observation", "combo-value-concept"): {Source("value-concept"), Source("component-value-concept")},
        ("Observation", "combo-data-absent-reason"): {
            Source("data-absent-reason"),
            Source("component-data-absent-reason"),
        },
        ("Observation", "patient"): {Source("subject", "Patient")},
        ("Condition", "patient"): {Source("subject", "Patient")},
        ("ChargeItem", "patient"): {Source("subject", "Patient")},
        ("MedicationRequest", "patient"): {Source("subject", "Patient")},
        ("Encounter", "patient"): {Source("subject", "Patient")},
        ("Encounter", "practitioner"): {Source("participant", "Practitioner")},
        ("AuditEvent", "patient"): {Source("agent", "Patient"), Source("entity", "Patient")},
        ("Coverage", "patient"): {Source("beneficiary")},
        ("Patient", "phonetic"): {Source("name")},
    }
    for (rtype, code), want in expect.items():
        assert set(sources(registry, rtype, code)) == want, (rtype, code)
    # Not derived: own expressions (`patient` = X.patient), a filter no parameter has unfiltered, and
    # composites over the same elements whose components differ.
    for rtype, code in [
        ("AllergyIntolerance", "patient"),
        ("Immunization", "patient"),
        ("EpisodeOfCare", "care-manager"),
        ("Observation", "code-value-concept"),
        ("Observation", "code-value-quantity"),
        ("Observation", "subject"),
        ("Observation", "code"),
        ("Patient", "name"),
    ]:
        assert sources(registry, rtype, code) == (Source(code),), (rtype, code)
    # Common parameters serve system-wide searches and are never derived.
    assert all(not p.derived_from for p in registry.common.values())


def test_indexer_skips_derived_and_custom_parameters_are_never_derived() -> None:
    registry = Registry()
    custom = registry.register(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/sp/obs-code-copy",
            "status": "active",
            "code": "obs-code-copy",
            "base": ["Observation"],
            "type": "token",
            "expression": "Observation.code",  # the same rows as `code`, but custom: indexed as is
        }
    )
    assert custom is not None and custom.derived_from == {}
    obs = next(r for r in dataset() if r["id"] == "o-bp")
    rows = Indexer(registry).rows("Observation", obs)
    params = {row["param"] for table_rows in rows.values() for row in table_rows}
    assert {"code", "component-code", "subject", "obs-code-copy", "component-code-value-quantity"} <= params
    assert not {"combo-code", "patient", "combo-code-value-quantity", "combo-value-quantity"} & params
