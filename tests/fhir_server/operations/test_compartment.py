"""The vendored Patient compartment and care-date tables agree with the official search parameters."""

from __future__ import annotations

from fhir_server.search.compartment import care_date_params, compartment_pairs, patient_compartment
from fhir_server.search.registry import get_registry


def test_compartment_is_the_official_r4_definition():
    comp = patient_compartment()
    assert len(comp) == 66
    assert comp["Observation"] == ("subject", "performer")
    assert comp["Encounter"] == ("patient",)
    assert comp["Patient"] == ("link",)
    assert "Organization" not in comp and "Practitioner" not in comp


def test_every_parameter_is_an_indexed_search_parameter_of_the_right_type():
    reg = get_registry()
    for res_type, param in compartment_pairs():
        sp = reg.get(res_type, param)
        assert sp is not None and sp.type == "reference", (res_type, param)
        assert "Patient" in sp.target or not sp.target, (res_type, param)
    for res_type, params in care_date_params().items():
        assert res_type in patient_compartment(), res_type
        for param in params:
            sp = reg.get(res_type, param)
            assert sp is not None and sp.type == "date", (res_type, param)
