"""Deterministic synthetic QĐ130 data: several hospitals, shared patients, referrals, ground truth."""

from .generator import Person, SynthDataset, Visit, generate

__all__ = ["Person", "SynthDataset", "Visit", "generate"]
