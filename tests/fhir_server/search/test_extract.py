"""Pure tests of the expression compiler, value extraction and query value parsing (no database)."""

from __future__ import annotations

import gzip
from importlib import resources as pkg_resources

import orjson
import pytest

from fhir_server.search.fhirpath import compile_for_type, parse_fragment
from fhir_server.search.indexer import Indexer
from fhir_server.search.query import number_bounds, parse_request, split_prefix, split_values
from fhir_server.search.registry import get_registry
from fhir_server.search.values import date_range, parse_reference, string_rows, token_rows
from tests.fhir_server.search.vn_data import resources


def _rows(res: dict) -> dict[str, list[dict]]:
    return {f"sp_{kind}": rows for kind, rows in Indexer().rows(res["resourceType"], res).items()}


def test_every_official_expression_compiles_or_falls_back() -> None:
    data = orjson.loads(
        gzip.decompress(
            pkg_resources.files("fhir_server.search.data")
            .joinpath("search-parameters-r4.json.gz")
            .read_bytes()
        )
    )
    assert len(data) > 1300
    fallback = []
    for sp in data:
        for base in sp.get("base", []):
            if sp.get("expression") and base not in ("Resource", "DomainResource"):
                assert compile_for_type(sp["expression"], base) is not None, sp["url"]
                for frag in sp["expression"].split("|"):
                    if frag.strip().startswith(base) and parse_fragment(frag) is None:
                        fallback.append(frag.strip())
    # Only a handful of expressions need the general FHIRPath engine.
    assert len(fallback) <= 5, fallback


@pytest.mark.parametrize(
    ("expr", "rtype", "resource", "expected"),
    [
        ("Observation.value as Quantity", "Observation", {"valueQuantity": {"value": 5}}, [{"value": 5}]),
        (
            "(Observation.value as CodeableConcept).text",
            "Observation",
            {"valueCodeableConcept": {"text": "Dương tính"}},
            ["Dương tính"],
        ),
        ("Condition.onset.as(dateTime)", "Condition", {"onsetDateTime": "2024-01-01"}, ["2024-01-01"]),
        (
            "Observation.subject.where(resolve() is Patient)",
            "Observation",
            {"subject": {"reference": "Group/g1"}},
            [],
        ),
        (
            "Observation.subject.where(resolve() is Patient)",
            "Observation",
            {"subject": {"reference": "Patient/p1"}},
            [{"reference": "Patient/p1"}],
        ),
        (
            "Patient.extension('http://x/e').value",
            "Patient",
            {
                "extension": [
                    {"url": "http://x/e", "valueString": "Kinh"},
                    {"url": "other", "valueString": "no"},
                ]
            },
            ["Kinh"],
        ),
        (
            "Bundle.entry[0].resource",
            "Bundle",
            {"entry": [{"resource": {"id": "a"}}, {"resource": {"id": "b"}}]},
            [{"id": "a"}],
        ),
        (
            "Patient.name | Practitioner.name",
            "Practitioner",
            {"name": [{"family": "Lê"}]},
            [{"family": "Lê"}],
        ),
        (
            "Patient.deceased.exists() and Patient.deceased != false",
            "Patient",
            {"deceasedBoolean": True},
            [True],
        ),
    ],
)
def test_compiled_extractors(expr, rtype, resource, expected) -> None:
    resource = {"resourceType": rtype, **resource}
    assert compile_for_type(expr, rtype)(resource) == expected


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("2024", "2024-01-01T00:00:00", "2024-12-31T23:59:59.999999"),
        ("2024-02", "2024-02-01T00:00:00", "2024-02-29T23:59:59.999999"),
        ("2024-12-31", "2024-12-31T00:00:00", "2024-12-31T23:59:59.999999"),
        ("2024-01-15T08:30:00+07:00", "2024-01-15T01:30:00", "2024-01-15T01:30:00.999999"),
        ("2024-01-15T08:30:00.25Z", "2024-01-15T08:30:00.250000", "2024-01-15T08:30:00.259999"),
    ],
)
def test_date_precision_ranges(text: str, lo: str, hi: str) -> None:
    from datetime import datetime, timezone

    def us(s: str) -> int:
        dt = datetime.fromisoformat(s).replace(tzinfo=timezone.utc)
        return int(dt.timestamp()) * 1_000_000 + dt.microsecond

    assert date_range(text) == (us(lo), us(hi))
    assert date_range("15/01/2024") is None


def test_vietnamese_string_folding() -> None:
    rows = string_rows({"family": "NGUYỄN", "given": ["Thị", "Đào"]})
    folded = {f for f, _ in rows}
    assert {"nguyen", "thi", "dao", "nguyen thi dao", "thi dao nguyen"} <= folded
    assert ("nguyen", "NGUYỄN") in rows


def test_token_shapes() -> None:
    assert token_rows({"coding": [{"system": "s", "code": "c", "display": "Cân nặng"}], "text": "Cân"}) == [
        ("s", "c", "can nang"),
        (None, None, "can"),
    ]
    assert token_rows({"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "001085012345"}) == [
        ("http://fhir.hl7.org.vn/core/sid/cccd", "001085012345", None)
    ]
    assert token_rows({"system": "phone", "value": "0912345678"}) == [("phone", "0912345678", None)]
    assert token_rows(True) == [(None, "true", None)]


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("Patient/p1", ("Patient", "p1", None)),
        ("Patient/p1/_history/3", ("Patient", "p1", None)),
        ("http://other.vn/fhir/Patient/9", ("Patient", "9", "http://other.vn/fhir/Patient/9")),
        (
            "http://hl7.org/fhir/Questionnaire/q|1.0",
            ("Questionnaire", "q", "http://hl7.org/fhir/Questionnaire/q"),
        ),
        ("#contained", (None, None, None)),
    ],
)
def test_parse_reference(ref: str, parsed: tuple) -> None:
    assert parse_reference(ref) == parsed


def test_query_value_parsing() -> None:
    assert split_values(r"a,b\,c,") == ["a", "b,c"]
    assert split_prefix("ge2024") == ("ge", "2024")
    assert split_prefix("enc") == ("eq", "enc")
    assert number_bounds("100") == (100.0, 99.5, 100.5)
    assert number_bounds("7.25")[1:] == pytest.approx((7.245, 7.255))
    req = parse_request(
        [("_sort", "-date,name"), ("_include:iterate", "Patient:organization"), ("_count", "5000")]
    )
    assert req.sort == [("date", True), ("name", False)] and req.includes[0].iterate and req.count == 1000


def test_index_rows_for_vietnamese_patient() -> None:
    patient = next(r for r in resources() if r["id"] == "p1")
    rows = _rows(patient)
    names = {r["value"] for r in rows["sp_string"] if r["param"] == "name"}
    assert "nguyen van an" in names
    ident = [r for r in rows["sp_token"] if r["param"] == "identifier"]
    assert ident == [
        {
            "res_type": "Patient",
            "param": "identifier",
            "system": "http://fhir.hl7.org.vn/core/sid/cccd",
            "code": "001085012345",
            "text": None,
        }
    ]
    assert [r["target_id"] for r in rows["sp_reference"] if r["param"] == "organization"] == ["org1"]


def test_custom_search_parameter_registration() -> None:
    from tests.fhir_server.search.vn_data import ethnicity_param

    registry = get_registry()
    param = registry.register(ethnicity_param())
    assert param is not None and registry.get("Patient", "ethnicity") is param
    patient = next(r for r in resources() if r["id"] == "p2")
    tokens = [r for r in _rows(patient)["sp_token"] if r["param"] == "ethnicity"]
    assert tokens[0]["code"] == "02" and tokens[0]["text"] == "tay"
    # A custom parameter cannot shadow an official code.
    assert registry.register({**ethnicity_param(), "url": "http://x/sp/name", "code": "name"}).custom is False


def test_indexing_speed_budget() -> None:
    """Not a benchmark: guards against an accidental fallback to the slow path for common types."""
    import time

    items = resources() * 50
    indexer = Indexer()
    start = time.perf_counter()
    for res in items:
        indexer.rows(res["resourceType"], res)
    assert (time.perf_counter() - start) / len(items) < 0.002
