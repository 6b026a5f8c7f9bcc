"""Fellegi–Sunter pair scoring and the match / possible / non-match decision (weights from YAML)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from fhir_server.identity.features import PatientFeatures
from fhir_server.text import fold
from mappings import load_yaml

FIELDS = ("family", "given", "birth", "sex", "address", "phone", "cccd", "bhxh")
DEMOGRAPHIC_FIELDS = FIELDS[:6]

MATCH, POSSIBLE, NON_MATCH = "match", "possible", "non-match"


def within_edits(a: str, b: str, k: int) -> bool:
    """True when a and b are at most k edits apart (insert, delete, substitute, swap of neighbours)."""
    la, lb = len(a), len(b)
    if abs(la - lb) > k:
        return False
    if a == b:
        return True
    # Optimal-string-alignment distance, rows only; names are short so this stays cheap.
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        ca = a[i - 1]
        row_min = i
        for j in range(1, lb + 1):
            cb = b[j - 1]
            cost = 0 if ca == cb else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            if v < row_min:
                row_min = v
        if row_min > k:
            return False
        prev2, prev = prev, cur
    return prev[lb] <= k


def compare_family(a: str, b: str) -> str | None:
    """Level of agreement of two folded family names."""
    if not a or not b:
        return None
    if a == b:
        return "agree"
    return "fuzzy" if len(a) >= 3 and within_edits(a, b, 1) else "disagree"


def compare_given(a: PatientFeatures, b: PatientFeatures) -> str | None:
    """Level of agreement of middle + given names."""
    if not a.given or not b.given:
        return None
    if a.given == b.given:
        return "exact"
    # Two edits are allowed over a long name only if the given name itself is at most one edit off,
    # so "thi thao" / "thi chau" (sisters) stay apart while "van trong thanh" / "van trong thahn" join.
    k = 2 if min(len(a.given), len(b.given)) >= 8 and within_edits(a.last, b.last, 1) else 1
    if within_edits(a.given, b.given, k):
        return "fuzzy"
    if a.last == b.last:
        return "last_only"
    return "disagree"


def _one_digit_apart(x: int, y: int) -> bool:
    sx, sy = str(x), str(y)
    return len(sx) == len(sy) and sum(c1 != c2 for c1, c2 in zip(sx, sy)) == 1


def compare_birth(a: PatientFeatures, b: PatientFeatures) -> str | None:
    """Level of agreement of birth dates, tolerant of year-only dates and swapped day/month."""
    if a.year is None or b.year is None:
        return None
    if a.month is None or b.month is None:
        return "partial" if a.year == b.year else "disagree"
    if a.year == b.year:
        if a.month == b.month and a.day == b.day:
            return "exact"
        if a.month == b.day and a.day == b.month:
            return "swapped"
        return "year"
    if a.month == b.month and a.day == b.day and _one_digit_apart(a.year, b.year):
        return "typo"
    return "disagree"


def compare_address(a: PatientFeatures, b: PatientFeatures) -> str | None:
    """Finest administrative unit both records share (ward > district > province)."""
    if a.ward and b.ward:
        if a.ward == b.ward:
            return "ward"
    if a.district and b.district and a.district == b.district and (a.province == b.province):
        return "district"
    if a.province and b.province:
        return "province" if a.province == b.province else "disagree"
    if a.ward and b.ward:
        return "disagree"
    return None


def _equal(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return None
    return "agree" if a == b else "disagree"


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome for one pair of Patient records."""

    outcome: str  # match | possible | non-match
    method: str  # deterministic | probabilistic
    score: float
    levels: tuple[str | None, ...]  # one per FIELDS entry
    reason: str = ""

    def features(self) -> dict[str, str]:
        """Field -> agreement level, for the review queue and $match explanations."""
        return {f: lv for f, lv in zip(FIELDS, self.levels) if lv is not None}


class Matcher:
    """Scores pairs with log2(m/u) weights and classifies them with the YAML thresholds."""

    def __init__(self, config: dict, family_table: dict):
        self.config = config
        self.weights: dict[str, dict[str, float]] = {}
        for fname, levels in config["fields"].items():
            self.weights[fname] = {lv: math.log2(p["m"] / p["u"]) for lv, p in levels.items() if "u" in p}
        fam = config["fields"]["family"]["agree"]["m"]
        self.default_family_freq = float(family_table.get("default_frequency", 0.002))
        self.family_agree: dict[str, float] = {}
        for name, freq in (family_table.get("frequencies") or {}).items():
            key = fold(str(name))
            # Names that fold together (e.g. accents lost) pool their frequency.
            self.family_agree[key] = self.family_agree.get(key, 0.0) + float(freq)
        self._family_m = fam
        self.family_agree = {k: math.log2(fam / v) for k, v in self.family_agree.items()}
        self.default_family_agree = math.log2(fam / self.default_family_freq)
        th = config["thresholds"]
        self.match_threshold = float(th["match"])
        self.possible_threshold = float(th["possible"])
        self.min_demographic = float((config.get("deterministic") or {}).get("min_demographic_score", 0.0))
        # Levels that forbid an automatic probabilistic link (review instead): household members share
        # surname, address, phone and (twins) birth date, which independence-based weights overrate.
        self.vetoes = {(f, lv) for f, lvs in (config.get("veto") or {}).items() for lv in lvs}
        blocking = config.get("blocking") or {}
        self.max_name_block = int(blocking.get("max_name_block", 400))
        self.max_phone_block = int(blocking.get("max_phone_block", 20))

    def family_frequency(self, folded: str) -> float:
        """Share of the population with this (folded) family name."""
        w = self.family_agree.get(folded)
        return self.default_family_freq if w is None else self._family_m / 2**w

    def levels(self, a: PatientFeatures, b: PatientFeatures) -> tuple[str | None, ...]:
        """Agreement level of every field (None where a value is missing on either side)."""
        return (
            compare_family(a.family, b.family),
            compare_given(a, b),
            compare_birth(a, b),
            _equal(a.sex, b.sex),
            compare_address(a, b),
            _equal(a.phone, b.phone),
            _equal(a.cccd, b.cccd),
            _equal(a.bhxh, b.bhxh),
        )

    def weight(self, fname: str, level: str | None, a: PatientFeatures) -> float:
        """log2(m/u) of one field level (0 when missing)."""
        if level is None:
            return 0.0
        if fname == "family" and level == "agree":
            return self.family_agree.get(a.family, self.default_family_agree)
        return self.weights[fname][level]

    def score(self, a: PatientFeatures, b: PatientFeatures) -> tuple[float, float, tuple[str | None, ...]]:
        """(total score, demographic-only score, levels) of a pair."""
        levels = self.levels(a, b)
        demo = 0.0
        total = 0.0
        for i, (fname, level) in enumerate(zip(FIELDS, levels)):
            w = self.weight(fname, level, a)
            total += w
            if i < len(DEMOGRAPHIC_FIELDS):
                demo += w
        return total, demo, levels

    def decide(self, a: PatientFeatures, b: PatientFeatures) -> Decision:
        """Classify a pair: deterministic on shared ids, otherwise by score thresholds."""
        total, demo, levels = self.score(a, b)
        shared = set(a.person_keys()) & set(b.person_keys())
        conflict = (a.cccd and b.cccd and a.cccd != b.cccd) or (a.bhxh and b.bhxh and a.bhxh != b.bhxh)
        if shared:
            if conflict:
                return Decision(POSSIBLE, "deterministic", total, levels, "identifiers conflict")
            if demo < self.min_demographic:
                return Decision(
                    POSSIBLE, "deterministic", total, levels, "shared identifier, demographics differ"
                )
            return Decision(MATCH, "deterministic", total, levels, "shared identifier")
        if total >= self.match_threshold:
            if conflict:
                return Decision(POSSIBLE, "probabilistic", total, levels, "identifiers conflict")
            vetoed = [f"{f} {lv}" for f, lv in zip(FIELDS, levels) if (f, lv) in self.vetoes]
            if vetoed:
                return Decision(POSSIBLE, "probabilistic", total, levels, "veto: " + ", ".join(vetoed))
            return Decision(MATCH, "probabilistic", total, levels)
        if total >= self.possible_threshold:
            return Decision(POSSIBLE, "probabilistic", total, levels)
        return Decision(NON_MATCH, "probabilistic", total, levels)


@lru_cache(maxsize=1)
def default_matcher() -> Matcher:
    """The matcher configured by mappings/identity/matcher.yaml and family_names.yaml."""
    return Matcher(load_yaml("identity/matcher.yaml"), load_yaml("identity/family_names.yaml"))
