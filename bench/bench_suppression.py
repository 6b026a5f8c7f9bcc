"""Cost of complementary small-cell suppression (issue 14) on published table shapes.

    .venv/bin/python bench/bench_suppression.py [--rounds 5]

Tables: new province (34) × month (12) and new province × ICD-10 chapter (22), counts drawn from a
skewed distribution (a large city, mid-size and small provinces) so that about a tenth of the cells are
below the minimum. Prints, per shape, the cells withheld by primary and by complementary suppression and
the time of `complement` (median of interleaved rounds), beside the time of primary suppression alone.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from fhir_server.reports.summary import _suppress
from fhir_server.reports.suppression import complement, disclosed

MIN = 5


def table(cols: int, seed: int) -> list[dict]:
    """One province × column table of visit counts."""
    rnd = random.Random(seed)
    rows = []
    for p in range(34):
        size = 2000 if p == 0 else (300 if p < 6 else rnd.choice([8, 15, 30, 60]))
        for c in range(cols):
            n = int(rnd.expovariate(1 / size) * (0.3 if c % 7 == 6 else 1))
            if n:
                rows.append({"province_new": f"{p:02d}", "col": c, "raw": n})
    return rows


def main() -> None:
    """Run the interleaved rounds and print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    dims = ["province_new", "col"]
    for name, cols in (("province x month", 12), ("province x ICD chapter", 22)):
        primary_t, complement_t = [], []
        for r in range(args.rounds):
            raw = table(cols, r)
            t0 = time.perf_counter()
            rows = [
                {"province_new": x["province_new"], "col": x["col"], "value": _suppress(x["raw"], MIN)}
                for x in raw
            ]
            t1 = time.perf_counter()
            out = complement(rows, dims)
            t2 = time.perf_counter()
            primary_t.append(t1 - t0)
            complement_t.append(t2 - t1)
            assert disclosed(out, dims) == []
        primary = sum(1 for x in rows if x["value"] is None)
        extra = sum(1 for x in out if x["value"] is None) - primary
        print(
            f"{name}: {len(rows)} cells, {primary} primary + {extra} complementary withheld; "
            f"primary {statistics.median(primary_t) * 1e3:.2f} ms, "
            f"complement {statistics.median(complement_t) * 1e3:.1f} ms (median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
