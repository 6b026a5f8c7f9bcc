"""Pairwise precision / recall of link sets against synthetic ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    """Pair counts and the derived precision / recall."""

    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        """Share of linked pairs that are really the same person."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of same-person pairs that ended up linked."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def pair_quality(link_sets: Iterable[Iterable[str]], truth: Mapping[str, str]) -> Quality:
    """Score link sets (lists of patient ids) against truth (patient id -> person id)."""
    per_person = Counter(truth.values())
    true_pairs = sum(c * (c - 1) // 2 for c in per_person.values())
    predicted = correct = 0
    for members in link_sets:
        members = list(members)
        n = len(members)
        predicted += n * (n - 1) // 2
        same = Counter(truth[m] for m in members)
        correct += sum(c * (c - 1) // 2 for c in same.values())
    return Quality(true_pairs, predicted, correct)
