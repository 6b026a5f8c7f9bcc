"""The write path's index shortcuts give exactly the rows of the general path, on real resources."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from fhir_server.search.fhirpath import _fallback, compile_for_type
from fhir_server.search.indexer import Indexer, _emit
from tests.fhir_server.search.vn_data import resources as vn_resources

_EXAMPLES = Path(__file__).parents[2] / "conformance" / "data" / "r4-examples.json.gz"
DECEASED = "Patient.deceased.exists() and Patient.deceased != false"


def _examples() -> list[dict]:
    return orjson.loads(gzip.decompress(_EXAMPLES.read_bytes()))


def _patients() -> list[dict]:
    base = {"resourceType": "Patient", "name": [{"family": "Nguyễn", "given": ["Thị", "Hoa"]}]}
    variants = [
        {},
        {"deceasedBoolean": False},
        {"deceasedBoolean": True},
        {"deceasedDateTime": "2024-03-15T08:30:00+07:00"},
        {"deceasedDateTime": "2024"},
    ]
    examples = [r for r in _examples() if r.get("resourceType") == "Patient"]
    return [{**base, **v} for v in variants] + examples


@pytest.mark.parametrize("patient", _patients(), ids=lambda p: p.get("id") or str(sorted(p)))
def test_deceased_flag_is_computed_as_the_fhirpath_engine_does(patient: dict) -> None:
    fast = compile_for_type(DECEASED, "Patient")
    assert fast is not None
    assert fast(patient) == _fallback(DECEASED)(patient)


def test_deceased_flag_no_longer_needs_the_general_engine() -> None:
    fast = compile_for_type(DECEASED, "Patient")
    assert fast is not None and fast.__qualname__.startswith("_exists_not_false")


def _every_parameter(indexer: Indexer, res_type: str, resource: dict) -> dict[str, list[tuple]]:
    """The general path: every parameter of the type tried, in plan order."""
    out: dict[str, list[tuple]] = {}
    for param, extract in indexer._plan(res_type):
        values = extract(resource)
        if values:
            _emit(out, 7, res_type, param, values, indexer.registry)
    return out


def test_rows_of_present_elements_only_equal_rows_of_every_parameter() -> None:
    indexer = Indexer()
    corpus = [r for r in _examples() + vn_resources() if isinstance(r.get("resourceType"), str)]
    assert len(corpus) > 600
    compared = 0
    for resource in corpus:
        res_type = resource["resourceType"]
        try:
            expected = _every_parameter(indexer, res_type, resource)
        except Exception as exc:  # noqa: BLE001 - the same refusal must come from both paths
            with pytest.raises(type(exc)):
                indexer.tuples(7, res_type, resource)
            continue
        assert indexer.tuples(7, res_type, resource) == expected, (res_type, resource.get("id"))
        compared += bool(expected)
    assert compared > 500
