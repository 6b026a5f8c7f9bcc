"""Precision / recall floor of the whole linker on a seeded, labelled synthetic set."""

from devtools.identity.evaluate import pair_quality
from devtools.identity.synth import generate
from fhir_server.identity.features import extract
from fhir_server.identity.linker import link_records
from fhir_server.identity.scorer import default_matcher


def test_precision_and_recall_on_seeded_synthetic_patients():
    data = generate(4000, seed=2024, hospitals=20)
    assert data.true_pairs() > 1000  # enough cross-hospital pairs to mean something
    result = link_records([extract(r.resource) for r in data.records], default_matcher())
    quality = pair_quality(result.link_sets, {r.resource["id"]: r.person_id for r in data.records})
    assert quality.precision >= 0.98, quality
    assert quality.recall >= 0.90, quality


def test_synthetic_records_carry_the_injected_noise():
    records = [r.resource for r in generate(2000, seed=5).records]
    assert any(len(r["birthDate"]) == 4 for r in records)  # year-only
    assert any(r["name"][0]["text"].isascii() for r in records)  # accents lost
    assert any(
        r["name"][0]["text"] != r["name"][0]["text"].upper() and not r["name"][0]["text"].isascii()
        for r in records
    )  # diacritics kept, mixed case
    assert any(not any("cccd" in i["system"] for i in r["identifier"]) for r in records)  # missing CCCD
