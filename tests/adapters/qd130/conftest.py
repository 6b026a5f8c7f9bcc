"""Fixtures shared by the QĐ130 check tests: samples folder, a synthetic dataset, test code lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.qd130.check_lists import CodeLists
from adapters.qd130.check_rules import load_rules
from adapters.synth import generate, vocab

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"


@pytest.fixture(scope="session")
def synth_visits():
    """80 deterministic visits at 3 hospitals, with enough referrals and re-exams to host every recipe."""
    return generate(hospitals=3, visits=80, seed=7, referral_rate=0.3).visits


@pytest.fixture(scope="session")
def full_lists() -> CodeLists:
    """The shipped lists, plus stand-ins for the lists we cannot ship, built from the generator's vocabulary.

    The stand-ins exist only to prove the rules work once a real list is installed; they are not
    catalogues (ICD-10 codes here are the generator's real codes, the rest are its placeholders).
    """
    return CodeLists(
        load_rules().lists_config,
        {
            "quoc_tich": {"000"},
            "icd10": {d[0] for d in vocab.DIAGNOSES} | set(vocab.SECONDARY),
            "yhct": {"YHCT-TEST"},
            "ma_khoa": {"K01", "K03"},
            "co_so_kcb": {h[0] for h in vocab.HOSPITALS},
            "dmdc_thuoc": {d[0] for d in vocab.DRUGS},
            "dmdc_dvkt": {vocab.EXAM[0], vocab.BED[0], vocab.IMAGING[0], vocab.SUPPLY[0]}
            | {lab[0] for lab in vocab.LABS},
        },
    )
