"""Benchmark cross-hospital patient linking: quality (precision/recall) and throughput.

    .venv/bin/python bench/bench_identity.py                 # 100k patients, 20 hospitals, in memory
    .venv/bin/python bench/bench_identity.py --store-records 10000 --db sqlite:////tmp/ident.db

Part 1 links the labelled synthetic set in memory (feature extraction + blocking + scoring +
clustering), the same code `link_all` runs. Part 2 (optional) loads Patients into a real store and
times `link_all` and per-record `link_patient` (the after-ingest path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.identity.evaluate import pair_quality  # noqa: E402
from devtools.identity.synth import generate  # noqa: E402
from fhir_server.identity.features import extract  # noqa: E402
from fhir_server.identity.linker import link_records  # noqa: E402
from fhir_server.identity.scorer import default_matcher  # noqa: E402


def in_memory(n: int, hospitals: int, seed: int) -> None:
    """Link n synthetic records in memory and print quality and throughput."""
    t0 = time.perf_counter()
    data = generate(n, seed=seed, hospitals=hospitals)
    gen_s = time.perf_counter() - t0
    matcher = default_matcher()
    t0 = time.perf_counter()
    feats = [extract(r.resource) for r in data.records]
    t1 = time.perf_counter()
    result = link_records(feats, matcher)
    t2 = time.perf_counter()
    q = pair_quality(result.link_sets, {r.resource["id"]: r.person_id for r in data.records})
    truth = {r.resource["id"]: r.person_id for r in data.records}
    review_true = sum(truth[a] == truth[b] for a, b, _ in result.possibles)
    total = t2 - t0
    print(
        f"dataset: {len(data.records)} Patient records, {data.persons} persons, {hospitals} hospitals, "
        f"{data.true_pairs()} same-person pairs (generated in {gen_s:.1f}s)"
    )
    per = result.pairs_scored / len(feats)
    print(f"candidate pairs scored: {result.pairs_scored} ({per:.1f} per record)")
    print(
        f"auto links: {len(result.matches)}   review queue: {len(result.possibles)} "
        f"({review_true} of them truly the same person)"
    )
    print(
        f"precision: {q.precision:.4f}   recall: {q.recall:.4f}   "
        f"(pairwise over link sets; thresholds match={matcher.match_threshold} "
        f"possible={matcher.possible_threshold})"
    )
    print(
        f"time: features {t1 - t0:.2f}s, block+score+cluster {t2 - t1:.2f}s, total {total:.2f}s "
        f"-> {len(feats) / total:,.0f} records/s (single process)"
    )


def in_store(n: int, hospitals: int, seed: int, db: str | None) -> None:
    """Load n records into a real store, then time link_all and incremental link_patient."""
    from fhir_server.identity import service
    from fhir_server.interactions.bundles import transaction
    from fhir_server.storage import open_store

    tmp = None
    if not db:
        tmp = tempfile.mkdtemp(prefix="lienthong-ident-")
        db = f"sqlite:///{tmp}/bench.db"
    store = open_store(db)
    data = generate(n, seed=seed + 1, hospitals=hospitals)
    t0 = time.perf_counter()
    records = data.records
    incremental = records[-500:]
    for i in range(0, len(records), 500):
        chunk = records[i : i + 500]
        transaction(
            store,
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": r.resource,
                        "request": {"method": "PUT", "url": f"Patient/{r.resource['id']}"},
                    }
                    for r in chunk
                ],
            },
        )
    load_s = time.perf_counter() - t0
    print(f"\nstore: {db.split('@')[-1]}  loaded {len(records)} Patients in {load_s:.1f}s")
    # link_all over all but the last 500, then link those one by one like the ingest hook does.
    t0 = time.perf_counter()
    summary = service.link_all(store)
    all_s = time.perf_counter() - t0
    print(f"link_all: {summary} in {all_s:.1f}s -> {len(records) / all_s:,.0f} records/s")
    lat = []
    for r in incremental:
        t = time.perf_counter()
        service.link_patient(store, r.resource["id"])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    print(
        f"link_patient (re-link, {len(lat)} calls): p50 {statistics.median(lat):.1f} ms, "
        f"p95 {lat[int(len(lat) * 0.95)]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms"
    )
    store.close()


def main() -> None:
    """Parse arguments and run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--hospitals", type=int, default=20)
    ap.add_argument("--seed", type=int, default=130)
    ap.add_argument(
        "--store-records", type=int, default=0, help="also benchmark the store path with N records"
    )
    ap.add_argument("--db", default=None, help="database URL for the store path (default: temp SQLite file)")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    in_memory(args.records, args.hospitals, args.seed)
    if args.store_records:
        in_store(args.store_records, args.hospitals, args.seed, args.db)


if __name__ == "__main__":
    main()
