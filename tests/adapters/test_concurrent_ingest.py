"""Two pipelines ingesting the same patient at the same instant leave one Patient, not two."""

from __future__ import annotations

import threading

from adapters.ids import deterministic_id
from adapters.pipeline import ingest_many
from adapters.synth import generate


def _pairs_of_visits_at_one_hospital(count: int) -> list[tuple]:
    """(visit, visit) of the same person at the same hospital: two exports of one patient."""
    by_key: dict[tuple[str, str], list] = {}
    for v in generate(hospitals=2, visits=120, persons=25, seed=7).visits:
        by_key.setdefault((v.facility, v.ma_bn), []).append(v)
    pairs = [(vs[0], vs[1]) for vs in by_key.values() if len(vs) >= 2]
    assert len(pairs) >= count
    return pairs[:count]


def _race(store, first, second) -> list:
    barrier = threading.Barrier(2)
    results: list = []

    def pipeline(visit) -> None:
        barrier.wait()
        results.extend(ingest_many(store, [(visit.xml, f"file:{visit.filename}")], adapter="qd130"))

    threads = [threading.Thread(target=pipeline, args=(v,)) for v in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_pipelines_ingesting_one_patient_at_once_make_one_patient(store):
    pairs = _pairs_of_visits_at_one_hospital(8)
    for first, second in pairs:
        results = _race(store, first, second)
        assert [r.status for r in results] == ["processed", "processed"], [r.as_dict() for r in results]
    patients = list(store.iter_current("Patient"))
    assert len(patients) == len({(a.facility, a.ma_bn) for a, _ in pairs})
    for first, _ in pairs:
        assert store.read("Patient", deterministic_id("Patient", first.facility, first.ma_bn)) is not None
