"""Find stored Patients that match a given Patient (the engine behind `Patient/$match`)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.identity.features import extract
from fhir_server.identity.scorer import MATCH, POSSIBLE, Decision, Matcher, default_matcher
from fhir_server.identity.service import candidates_for


@dataclass(frozen=True, slots=True)
class MatchResult:
    """One candidate with its FHIR match grade and a 0..1 score."""

    patient_id: str
    resource: dict
    grade: str  # certain | probable | possible
    probability: float
    decision: Decision


def grade_of(d: Decision) -> str:
    """FHIR match-grade code for a decision."""
    if d.outcome == MATCH:
        return "certain" if d.method == "deterministic" else "probable"
    return "possible" if d.outcome == POSSIBLE else "certainly-not"


def probability(d: Decision, matcher: Matcher) -> float:
    """Map the log2 score to 0..1 (logistic around the middle of the review band); ids give 1.0."""
    if d.outcome == MATCH and d.method == "deterministic":
        return 1.0
    mid = (matcher.match_threshold + matcher.possible_threshold) / 2
    x = max(-60.0, min(60.0, (d.score - mid) / 2))
    return round(1 / (1 + 2**-x), 4)


def match_patient(
    store, patient: dict, only_certain: bool = False, count: int | None = None, matcher: Matcher | None = None
) -> list[MatchResult]:
    """Candidates for `patient` among stored, indexed Patients, best first (non-matches left out)."""
    matcher = matcher or default_matcher()
    me = extract(patient)
    ids = candidates_for(store, patient, matcher)
    found = store.identity.load_patients_committed(ids)
    results = []
    for pid, body in found.items():
        d = matcher.decide(me, extract(body))
        grade = grade_of(d)
        if grade == "certainly-not" or (only_certain and grade != "certain"):
            continue
        results.append(MatchResult(pid, body, grade, probability(d, matcher), d))
    results.sort(key=lambda r: (-r.probability, -r.decision.score, r.patient_id))
    return results[:count] if count else results
