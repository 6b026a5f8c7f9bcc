"""Search benchmark: load synthetic Vietnamese patients (+ observations, encounters) through the Store in
transaction bundles, then print p50/p99 latencies of typical searches.

    .venv/bin/python bench/bench_search.py --db postgresql://postgres@127.0.0.1:5432/bench --patients 100000

Each patient brings 8 Observations and 1 Encounter (10 resources per patient). Use --skip-load to rerun
the queries on an already loaded database.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from adapters.synth import vocab
from fhir_server.interactions.bundles import transaction
from fhir_server.storage import open_store

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
# Name pools are shared with the QĐ130 synthetic generator.
FAMILIES = vocab.FAMILY
MIDDLE = vocab.MIDDLE_M + vocab.MIDDLE_F
GIVEN = vocab.GIVEN_M + vocab.GIVEN_F
CODES = [
    ("29463-7", "kg", 40, 90),
    ("8867-4", "/min", 55, 110),
    ("8310-5", "Cel", 36, 40),
    ("2339-0", "mmol/L", 3.5, 12),
]


def cccd(i: int) -> str:
    """A 12-digit synthetic citizen id."""
    return f"0{(i * 7919) % 100:02d}{i:09d}"


def patient_bundle(start: int, n: int, rng: random.Random) -> dict:
    """Transaction of n patients with their observations and encounter."""
    entries = []
    for i in range(start, start + n):
        pid = f"bn{i}"
        family, middle, given = rng.choice(FAMILIES), rng.choice(MIDDLE), rng.choice(GIVEN)
        entries.append(
            {
                "resourceType": "Patient",
                "id": pid,
                "identifier": [{"system": CCCD, "value": cccd(i)}],
                "name": [{"family": family, "given": [middle, given], "text": f"{family} {middle} {given}"}],
                "gender": rng.choice(["male", "female"]),
                "birthDate": f"{rng.randint(1940, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "managingOrganization": {"reference": f"Organization/org{i % 20}"},
            }
        )
        entries.append(
            {
                "resourceType": "Encounter",
                "id": f"enc{i}",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": "2024-03-01T08:00:00+07:00", "end": "2024-03-01T10:00:00+07:00"},
            }
        )
        for k in range(8):
            code, unit, lo, hi = CODES[k % len(CODES)]
            entries.append(
                {
                    "resourceType": "Observation",
                    "id": f"obs{i}-{k}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "encounter": {"reference": f"Encounter/enc{i}"},
                    "effectiveDateTime": f"2024-{k + 1:02d}-{rng.randint(1, 28):02d}T09:00:00+07:00",
                    "valueQuantity": {
                        "value": round(rng.uniform(lo, hi), 1),
                        "unit": unit,
                        "system": "http://unitsofmeasure.org",
                        "code": unit,
                    },
                }
            )
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in entries
        ],
    }


def load(store, patients: int, per_bundle: int) -> None:
    """Load organizations and patients; prints throughput."""
    orgs = [
        {"resourceType": "Organization", "id": f"org{k}", "name": f"Bệnh viện Đa khoa số {k}"}
        for k in range(20)
    ]
    transaction(
        store,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": o, "request": {"method": "PUT", "url": f"Organization/{o['id']}"}} for o in orgs
            ],
        },
    )
    rng = random.Random(42)
    start = time.perf_counter()
    for first in range(0, patients, per_bundle):
        transaction(store, patient_bundle(first, min(per_bundle, patients - first), rng))
        done = first + per_bundle
        if done % (per_bundle * 50) == 0:
            rate = done * 10 / (time.perf_counter() - start)
            print(f"  loaded {done} patients ({rate:.0f} resources/s)", flush=True)
    elapsed = time.perf_counter() - start
    print(
        f"load: {patients * 10 + 20} resources in {elapsed:.1f}s ({patients * 10 / elapsed:.0f} resources/s)"
    )


def measure(store, name: str, res_type: str | None, make_params, runs: int) -> None:
    """Run one query shape `runs` times with varying values; print p50/p99 in ms."""
    times = []
    with store.engine.connect() as conn:
        for i in range(runs):
            params = make_params(i)
            t0 = time.perf_counter()
            body = store.search.search(conn, res_type, params, "http://bench/fhir")
            times.append((time.perf_counter() - t0) * 1000)
            assert body.startswith(b'{"resourceType":"Bundle"')
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{name:<48} p50 {statistics.median(times):7.2f} ms   p99 {p99:7.2f} ms   (n={runs})")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description="FHIR search benchmark")
    ap.add_argument("--db", default="sqlite:///bench_search.db")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--bundle", type=int, default=100, help="patients per transaction bundle")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    store = open_store(args.db)
    print(
        f"cores: {os.cpu_count()}  database: {store.engine.dialect.name}  patients: {args.patients} "
        f"(~{args.patients * 10:,} resources)"
    )
    if not args.skip_load:
        load(store, args.patients, args.bundle)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    n = args.patients
    rng = random.Random(7)
    pick = [rng.randrange(n) for _ in range(args.runs)]
    measure(
        store,
        "identifier (CCCD) token search",
        "Patient",
        lambda i: [("identifier", f"{CCCD}|{cccd(pick[i])}")],
        args.runs,
    )
    measure(
        store,
        "name search, diacritic folding (_count=20)",
        "Patient",
        lambda i: [("name", f"{rng.choice(['nguyen', 'tran van', 'le thi', 'pham duc'])}"), ("_count", "20")],
        args.runs,
    )
    measure(
        store,
        "patient-scoped Observation date range",
        "Observation",
        lambda i: [("subject", f"Patient/bn{pick[i]}"), ("date", "ge2024-03-01"), ("date", "lt2024-07-01")],
        args.runs,
    )
    measure(
        store,
        "chained: Observation?subject:Patient.identifier",
        "Observation",
        lambda i: [
            ("subject:Patient.identifier", f"{CCCD}|{cccd(pick[i])}"),
            ("code", "http://loinc.org|29463-7"),
        ],
        args.runs,
    )
    measure(
        store,
        "_revinclude: Patient by id + Observations",
        "Patient",
        lambda i: [("_id", f"bn{pick[i]}"), ("_revinclude", "Observation:subject")],
        args.runs,
    )
    measure(
        store,
        "_total=accurate gender=female (_count=10)",
        "Patient",
        lambda i: [("gender", "female"), ("_total", "accurate"), ("_count", "10")],
        max(10, args.runs // 30),
    )


if __name__ == "__main__":
    main()
