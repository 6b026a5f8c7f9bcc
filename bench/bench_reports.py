"""Province-month summary latency over N generated visits on PostgreSQL (issue 14: target < 2 s at 1M).

The generator writes visit facts straight into `report_visit` with COPY (the table the summaries read; in
production the reports hook fills it in the writing transaction, one row per Encounter), with realistic
spreads: 34 new / 63 old provinces weighted by population, 24 months, 4 visit classes, ~60 ICD-10 codes,
age bands, sex, BHYT. Then it times, median of --repeat runs after one warm-up, through the same repository
call the API uses:

  A. visits by new province x month over one year (the issue's "province-month summary")
  B. visits + admissions + referrals by old province for one month (an index-range query)
  C. top 10 diagnoses over the whole table

    createdb -h 127.0.0.1 -U postgres bench_reports
    python bench/bench_reports.py --db postgresql://postgres@127.0.0.1:5432/bench_reports --visits 100000,1000000

At 10M (`--visits 10000000 --generator sql --explain --drop`) the rows are generated inside PostgreSQL
(storage/sql/synthetic.py, INSERT … SELECT FROM generate_series, the same table the hook fills); A is also
timed "cold" (first run in a fresh connection right after the load, before any warm-up) and its EXPLAIN
(ANALYZE, BUFFERS) summary printed; `--drop` empties the table afterwards (disk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import time

import psycopg

from fhir_server.reports.facts import periods
from fhir_server.storage import open_store
from fhir_server.storage.sql import synthetic
from mappings import admin_units

ICD = [
    f"{letter}{n:02d}.{d}"
    for letter, n, d in [
        ("J", 18, 9),
        ("J", 6, 9),
        ("I", 10, 0),
        ("E", 11, 9),
        ("K", 29, 7),
        ("A", 9, 0),
        ("A", 91, 0),
        ("A", 90, 0),
        ("M", 54, 5),
        ("N", 39, 0),
        ("J", 20, 9),
        ("B", 8, 4),
        ("O", 80, 0),
        ("S", 52, 5),
    ]
]
ICD += [f"{chr(65 + i % 20)}{10 + i:02d}.{i % 10}" for i in range(46)]
CLASSES = [("outpatient", 80), ("inpatient", 12), ("emergency", 7), ("other", 1)]
BANDS = ["<1", "1-4", "5-14", "15-59", "60+"]


def generate(n: int, seed: int = 14):
    """Yield fact tuples in report_visit column order."""
    rnd = random.Random(seed)
    olds = admin_units.provinces("old")
    weights = [3 if p.code in ("01", "79") else 1 for p in olds]
    new_of = {p.code: admin_units.new_province_codes(p.code)[0] for p in olds}
    days = [periods(dt.date(2024, 1, 1) + dt.timedelta(days=d)) for d in range(730)]
    cls_names = [c for c, _ in CLASSES]
    cls_w = [w for _, w in CLASSES]
    icd_w = [1 / (i + 1) for i in range(len(ICD))]
    for i in range(n):
        old = rnd.choices(olds, weights)[0].code
        per = days[rnd.randrange(730)]
        cls = rnd.choices(cls_names, cls_w)[0]
        icd = rnd.choices(ICD, icd_w)[0]
        inpatient = cls == "inpatient"
        yield (
            f"lk-{i}",
            f"bn-{rnd.randrange(n)}",
            f"{old}{rnd.randrange(1, 40):03d}",
            old,
            new_of[old],
            per["day"],
            per["week"],
            per["month"],
            per["quarter"],
            per["year"],
            cls,
            1 if inpatient else 0,
            1,
            rnd.choice(["1", "2", "3", "5"]) if inpatient else None,
            rnd.randint(1, 15) if inpatient else None,
            1 if rnd.random() < 0.05 else 0,
            1 if rnd.random() < 0.03 else 0,
            None,
            icd,
            icd[:3],
            "X",
            rnd.choice(BANDS),
            rnd.choice(["male", "female"]),
            1 if rnd.random() < 0.9 else 0,
            "dengue" if icd.startswith(("A90", "A91")) else None,
        )


COLUMNS = (
    "encounter_id, patient_id, facility, province_old, province_new, day, week, month, quarter, year, "
    "visit_class, admitted, discharged, outcome, los_days, referral_in, referral_out, destination, icd_code, "
    "icd_block, icd_chapter, age_band, sex, bhyt, notifiable"
)


def load(url: str, n: int) -> float:
    """Empty report_visit and COPY n generated facts into it; seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("TRUNCATE report_visit")
        with conn.cursor() as cur, cur.copy(f"COPY report_visit ({COLUMNS}) FROM STDIN") as copy:
            for row in generate(n):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE report_visit")
    return time.perf_counter() - t0


def load_sql(store, n: int) -> float:
    """Fill report_visit with n facts generated inside PostgreSQL; seconds taken."""
    t0 = time.perf_counter()
    provinces = [(p.code, admin_units.new_province_codes(p.code)[0]) for p in admin_units.provinces("old")]
    synthetic.fill_visits(
        store.engine, n, provinces, ICD, progress=lambda k: print(f"  loaded {k:,}", flush=True)
    )
    return time.perf_counter() - t0


def explain(url: str) -> str:
    """The plan summary of query A (node types, rows, timing) from EXPLAIN (ANALYZE, BUFFERS)."""
    sql = (
        "EXPLAIN (ANALYZE, BUFFERS) SELECT province_new, month, count(*) FROM report_visit "
        "WHERE month >= '2024-01' AND month <= '2024-12' GROUP BY province_new, month"
    )
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        lines = [r[0] for r in conn.execute(sql)]
    keep = ("->", "Execution Time", "Planning Time", "Workers", "Heap Fetches", "Buffers")
    return "\n".join(
        line for line in lines if any(k in line for k in keep) or "Aggregate" in line or "Scan" in line
    )


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """(median ms, max ms, last result) after one warm-up call."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="PostgreSQL URL of a scratch database")
    ap.add_argument("--visits", default="100000,1000000", help="comma-separated sizes")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--generator", choices=("copy", "sql"), default="copy", help="copy: Python rows; sql: in PG"
    )
    ap.add_argument("--explain", action="store_true", help="print the EXPLAIN ANALYZE summary of A")
    ap.add_argument("--drop", action="store_true", help="empty report_visit at the end (disk)")
    ap.add_argument(
        "--reuse", action="store_true", help="keep the facts already loaded when their count is N"
    )
    args = ap.parse_args()
    store = open_store(args.db)  # creates the schema (report_visit included)
    repo = store.reports
    print(f"cores={os.cpu_count()}  db={args.db.split('@')[-1]}")
    print(
        "| visits | load (COPY) | A: province x month, 1 year | B: old province, 1 month | C: top 10 diagnoses |"
    )
    print("|---|---|---|---|---|")
    for n in [int(x) for x in args.visits.split(",")]:
        reuse = args.reuse and repo.count() == n
        if reuse:
            load_s = 0.0
        elif args.generator == "sql":
            load_s = load_sql(store, n)
        else:
            load_s = load(args.db, n)
        cold_store = open_store(args.db)
        t0 = time.perf_counter()
        cold_store.reports.aggregate(
            ["province_new", "month"], ["visits"], None, ("2024-01-01", "2024-12-31")
        )
        cold_ms = (time.perf_counter() - t0) * 1000
        cold_store.close()
        a = timed(
            lambda: repo.aggregate(["province_new", "month"], ["visits"], None, ("2024-01-01", "2024-12-31")),
            args.repeat,
        )
        b = timed(
            lambda: repo.aggregate(
                ["province_old"], ["visits", "admissions", "referrals_out"], {"month": "2024-05"}
            ),
            args.repeat,
        )
        c = timed(
            lambda: repo.aggregate(["icd_code"], ["visits"], None, (None, None), "visits", 10), args.repeat
        )
        loaded = "(reused)" if reuse else f"{load_s:.1f} s"
        print(
            f"| {n:,} | {loaded} | cold {cold_ms:.0f} ms, warm p50 {a[0]:.0f} ms (max {a[1]:.0f}; {len(a[2])} cells) "
            f"| {b[0]:.0f} ms (max {b[1]:.0f}) | {c[0]:.0f} ms (max {c[1]:.0f}) |",
            flush=True,
        )
        if args.explain:
            print(explain(args.db), flush=True)
    if args.drop:
        synthetic.drop_visits(store.engine)
    store.close()


if __name__ == "__main__":
    main()
