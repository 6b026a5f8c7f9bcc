"""Searches answered from statements compiled once per shape return the Bundles SQLAlchemy's path returns.

Each search runs twice over the same database: with the compiled shapes (issue 20) and through the
general path that builds every statement with SQLAlchemy; the searchset Bundles must be identical
except for their own id and timestamp, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
import pytest_asyncio

from fhir_server.errors import FhirError
from fhir_server.search.run import run_search
from tests.fhir_server.search.vn_data import CCCD, LOINC, _weight, ethnicity_param, resources, transaction

BASE = "http://bv.example.vn/fhir"


@pytest_asyncio.fixture
async def loaded(client, store):
    """The Vietnamese dataset plus six more weights of Nguyễn Văn An (p1), for paging."""
    extra = [_weight(f"w{i}", "p1", 60 + i, f"2025-0{i + 1}-10T08:00:00+07:00") for i in range(6)]
    resp = await client.post("/", json=transaction(resources() + extra))
    assert resp.status_code == 200, resp.text
    return store


def _search(store, res_type: str, query: str, templates: bool) -> dict:
    store.searcher.use_templates = templates
    try:
        raw = run_search(store, res_type, parse_qsl(query, keep_blank_values=True), BASE)
    finally:
        store.searcher.use_templates = True
    bundle = orjson.loads(raw)
    bundle.pop("id")
    bundle.pop("meta")
    return bundle


def _same(store, res_type: str, query: str) -> dict:
    """The Bundle of the compiled path, after checking the general path returns the same one."""
    before = store.searcher.templates.compiled_shapes()
    fast = _search(store, res_type, query, templates=True)
    general = _search(store, res_type, query, templates=False)
    assert fast == general
    assert store.searcher.templates.compiled_shapes() >= before
    return fast


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def _link(bundle: dict, relation: str) -> str | None:
    for link in bundle["link"]:
        if link["relation"] == relation:
            return urlsplit(link["url"]).query
    return None


SHAPES = [
    ("Patient", f"identifier={CCCD}|001085012345", ["p1"]),
    ("Patient", "identifier=001085012345", ["p1"]),
    ("Patient", f"identifier={CCCD}|", ["p1", "p2", "p3"]),
    ("Patient", "identifier=|001085012345", []),
    ("Patient", "gender:not=female", ["p1", "p3"]),
    ("Patient", "gender=male,female&_count=3", ["p1", "p2", "p3"]),
    ("Patient", f"identifier={CCCD}|079190000111&_revinclude=Observation:subject", ["p2", "o3"]),
    ("Observation", "subject=Patient/p2&_include=Observation:subject", ["o3", "p2"]),
    ("Observation", "patient=Patient/p3", ["o4"]),
    ("Observation", "subject=p3", ["o4"]),
    ("Observation", "subject:Patient=p3", ["o4"]),
    ("Observation", "subject:Group=Patient/p3", []),
    ("Observation", f"subject={BASE}/Patient/p3", ["o4"]),
    ("Observation", "subject=http://other.example.vn/fhir/Patient/p3", []),
    ("Observation", f"code={LOINC}|4548-4&subject=Patient/p3", ["o4"]),
    ("Observation", "patient=Patient/p2&_summary=count", []),
    ("Observation", "patient=Patient/p1&_total=accurate&_count=2", ["o1", "o2"]),
    ("Condition", "subject=Patient/p1&_sort=-_lastUpdated", ["c1"]),
    ("Patient", "name=nguyễn văn", ["p1"]),
    ("Patient", "name=NGUYEN&_count=1", ["p1"]),
    ("Patient", "family=trần,lê&gender=female", ["p4"]),
    ("Patient", "name=dung&_sort=-_lastUpdated", ["p4"]),
    ("Patient", "given=th%_", []),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("res_type,query,expected", SHAPES, ids=[s[1] for s in SHAPES])
async def test_compiled_shape_returns_the_general_paths_bundle(loaded, res_type, query, expected):
    loaded.searcher.templates.clear()
    bundle = _same(loaded, res_type, query)
    assert _ids(bundle) == expected
    # Every shape listed is compiled except a reference whose type contradicts its type modifier and
    # an absolute URL of another server: those stay on the general path.
    compiled = "Group" not in query and "other.example" not in query
    assert loaded.searcher.templates.compiled_shapes() == (1 if compiled else 0)


@pytest.mark.asyncio
async def test_summary_count_counts_the_patients_observations(loaded):
    bundle = _same(loaded, "Observation", "patient=Patient/p1&_summary=count")
    assert bundle["total"] == 8


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "sort", ["", "&_sort=_lastUpdated", "&_sort=-_lastUpdated", "&_sort=-_lastUpdated,_id"]
)
async def test_paging_forward_and_back_matches_the_general_path(loaded, sort):
    query = f"patient=Patient/p1&_count=3{sort}"
    seen: list[str] = []
    pages = []
    while query is not None:
        bundle = _same(loaded, "Observation", query)
        seen += _ids(bundle)
        pages.append(query)
        query = _link(bundle, "next")
    assert sorted(seen) == sorted(["o1", "o2"] + [f"w{i}" for i in range(6)])
    assert len(pages) == 3
    back = _same(loaded, "Observation", pages[-1])
    previous = _link(back, "previous")
    assert previous is not None
    assert _ids(_same(loaded, "Observation", previous)) == seen[3:6]


@pytest.mark.asyncio
async def test_same_shape_different_values_do_not_share_results(loaded):
    """Two identifiers of one shape: the second search must not get the first one's statement values."""
    first = _same(loaded, "Patient", f"identifier={CCCD}|001085012345")
    second = _same(loaded, "Patient", f"identifier={CCCD}|079190000111")
    third = _same(loaded, "Patient", f"identifier={CCCD}|031078000222")
    assert (_ids(first), _ids(second), _ids(third)) == (["p1"], ["p2"], ["p3"])
    assert _ids(_same(loaded, "Observation", "subject=Patient/p2")) == ["o3"]
    assert _ids(_same(loaded, "Observation", "subject=Patient/p3")) == ["o4"]
    assert _ids(_same(loaded, "Patient", "name=trần đức")) == ["p3"]
    assert _ids(_same(loaded, "Patient", "name=nguyễn thị")) == ["p2"]
    assert _ids(_same(loaded, "Patient", "name=le thi")) == ["p4"]


@pytest.mark.asyncio
async def test_identifier_search_really_runs_a_compiled_shape(loaded):
    """A test of the cache itself: a plain identifier search is compiled once and reused."""
    loaded.searcher.templates.clear()
    _search(loaded, "Patient", f"identifier={CCCD}|001085012345", templates=True)
    _search(loaded, "Patient", f"identifier={CCCD}|079190000111", templates=True)
    assert loaded.searcher.templates.compiled_shapes() == 1


@pytest.mark.asyncio
async def test_tampered_page_token_is_refused_on_both_paths(loaded):
    for templates in (True, False):
        with pytest.raises(FhirError) as info:
            _search(loaded, "Observation", "patient=Patient/p1&_page_token=Zm9v", templates)
        assert info.value.status == 400


@pytest.mark.asyncio
async def test_writing_a_search_parameter_forgets_the_compiled_shapes(loaded, client):
    """Shapes were compiled against the old parameter definitions; a SearchParameter write drops them."""
    _search(loaded, "Patient", f"identifier={CCCD}|001085012345", templates=True)
    assert loaded.searcher.templates.compiled_shapes() == 1
    resp = await client.put("/SearchParameter/vn-ethnicity", json=ethnicity_param())
    assert resp.status_code in (200, 201), resp.text
    assert loaded.searcher.templates.compiled_shapes() == 0
    assert _ids(_same(loaded, "Patient", f"identifier={CCCD}|001085012345")) == ["p1"]
