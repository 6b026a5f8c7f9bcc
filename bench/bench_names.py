"""Name search as clinicians type it: p50/p99 of accent-folded name prefixes over N realistic patients.

    .venv/bin/python bench/bench_names.py --db postgresql://postgres@127.0.0.1:5432/bench_names --patients 100000

Patients come from `bench/vn_people.py` (family names at their real frequencies: NGUYỄN ~38 %).
The database is `VACUUM ANALYZE`d after the load (PostgreSQL; SQLite: `ANALYZE`). `--skip-load` reruns the
queries on an already loaded database.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vn_people import VietnamesePeople  # noqa: E402
from fhir_server.interactions.bundles import transaction  # noqa: E402
from fhir_server.search.run import run_search  # noqa: E402
from fhir_server.storage import open_store  # noqa: E402

TYPED = ["ng", "nguyen", "nguyen van", "nguyen van an", "tran thi", "le", "nguyen thi thu", "pham minh"]


def load(store, patients: int, per_bundle: int) -> None:
    """Write `patients` Patients in transaction Bundles of `per_bundle`; prints throughput."""
    people = VietnamesePeople()
    rng = random.Random(20)
    start = time.perf_counter()
    for first in range(0, patients, per_bundle):
        entries = []
        for i in range(first, min(first + per_bundle, patients)):
            res = people.person(rng) | {"id": f"p{i}"}
            entries.append({"resource": res, "request": {"method": "PUT", "url": f"Patient/p{i}"}})
        transaction(store, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    elapsed = time.perf_counter() - start
    print(f"load: {patients} Patients in {elapsed:.1f}s ({patients / elapsed:.0f}/s)", flush=True)


def analyze(store) -> None:
    """Fresh statistics, as production autovacuum would have them."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def measure_id(store, runs: int) -> None:
    """The floor: a search by `_id` through the same code, to read the name figures against."""
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        run_search(store, "Patient", [("_id", f"p{i}"), ("_count", "20")], "http://b/fhir")
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{'_id (floor)':<25} p50 {statistics.median(times):7.2f} ms   p99 {p99:7.2f} ms   (n={runs})")


def measure(store, typed: str, runs: int) -> None:
    """Run `name=<typed>&_count=20` `runs` times; prints p50/p99."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        body = run_search(store, "Patient", [("name", typed), ("_count", "20")], "http://b/fhir")
        times.append((time.perf_counter() - t0) * 1000)
        assert body.startswith(b'{"resourceType":"Bundle"')
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"name={typed!r:<20} p50 {statistics.median(times):7.2f} ms   p99 {p99:7.2f} ms   (n={runs})")


def explain(store, typed: str, runs: int) -> None:
    """PostgreSQL only: p50/p99 of the page query's own execution time (EXPLAIN ANALYZE), which the
    Python client's share of a busy machine does not blur."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, params, context, executemany) -> None:
        if "content" in statement and "LIMIT" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    run_search(store, "Patient", [("name", typed), ("_count", "20")], "http://b/fhir")
    event.remove(store.engine, "before_cursor_execute", capture)
    statement, params = seen[-1]
    times = []
    with store.engine.connect() as conn:
        for _ in range(runs):
            plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, params)]
            times.append(float(plan[-1].split()[2]))
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"SQL name={typed!r:<16} p50 {statistics.median(times):7.2f} ms   p99 {p99:7.2f} ms   (n={runs})")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description="accent-folded name search benchmark")
    ap.add_argument("--db", default="sqlite:///bench_names.db")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--bundle", type=int, default=100)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the query list (interleaves the prefixes)")
    ap.add_argument("--explain", action="store_true", help="also time the SQL alone (PostgreSQL)")
    args = ap.parse_args()
    store = open_store(args.db)
    print(f"cores: {os.cpu_count()}  database: {store.engine.dialect.name}  patients: {args.patients}")
    if not args.skip_load:
        load(store, args.patients, args.bundle)
    analyze(store)
    print(f"load average: {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        measure_id(store, args.runs)
        for typed in TYPED:
            measure(store, typed, args.runs)
    if args.explain and store.engine.dialect.name == "postgresql":
        for typed in TYPED:
            explain(store, typed, args.runs)


if __name__ == "__main__":
    main()
