"""Lab and imaging service rows (XML3 MA_NHOM 1 and 2) become ServiceRequests with a SNOMED category
taken from mappings/qd130/fhir.yaml."""

from __future__ import annotations

from adapters.qd130.plugin import Qd130Adapter
from adapters.synth import generate


def _service_requests() -> list[dict]:
    ad = Qd130Adapter()
    out = []
    for visit in generate(hospitals=2, visits=20, seed=4).visits:
        for rec in ad.parse(visit.xml).records:
            out += [
                e["resource"]
                for e in ad.to_fhir(rec).bundle["entry"]
                if e["resource"]["resourceType"] == "ServiceRequest"
            ]
    return out


def test_lab_and_imaging_requests_carry_their_snomed_category():
    codes = {c["code"] for sr in _service_requests() for cat in sr.get("category", []) for c in cat["coding"]}
    assert {"108252007", "363679005"} <= codes
