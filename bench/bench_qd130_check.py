"""QĐ130 check benchmark: files/s of the agency-style rule check on synthetic envelopes.

    python bench/bench_qd130_check.py --visits 2000

Prints the dataset size, then files/s and per-file latency percentiles, single process and with one
worker process per core. No database is involved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.qd130.check import check_bytes  # noqa: E402
from adapters.synth import generate  # noqa: E402

_XMLS: list[bytes] = []


def _run(indices: range) -> tuple[int, int, list[float]]:
    """Check a slice of the dataset; returns (files, findings, latencies)."""
    n = found = 0
    lat = []
    for i in indices:
        t = time.perf_counter()
        found += len(check_bytes(_XMLS[i]).findings)
        lat.append(time.perf_counter() - t)
        n += 1
    return n, found, lat


def _init(xmls: list[bytes]) -> None:
    global _XMLS
    _XMLS = xmls


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else 0.0


def main() -> None:
    """Generate the dataset, warm up, then time one process and one process per core."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--visits", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    xmls = [v.xml for v in generate(hospitals=5, visits=args.visits, seed=args.seed).visits]
    _init(xmls)
    size = sum(map(len, xmls)) / len(xmls)
    print(f"cores {os.cpu_count()}, {len(xmls)} files, {size / 1024:.1f} kB/file")
    _run(range(min(50, len(xmls))))  # warm caches (rules, lists, lxml)
    t = time.perf_counter()
    n, found, lat = _run(range(len(xmls)))
    dt = time.perf_counter() - t
    p50, p99 = _pct(lat, 50), _pct(lat, 99)
    print(f"1 process : {n / dt:7.0f} files/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({found} findings)")
    procs = os.cpu_count() or 1
    if procs > 1:
        chunks = [range(i, len(xmls), procs) for i in range(procs)]
        with get_context("fork").Pool(procs, initializer=_init, initargs=(xmls,)) as pool:
            pool.map(_run, [range(min(20, len(xmls)))] * procs)
            t = time.perf_counter()
            results = pool.map(_run, chunks)
            dt = time.perf_counter() - t
        n = sum(r[0] for r in results)
        print(f"{procs} processes: {n / dt:7.0f} files/s")


if __name__ == "__main__":
    main()
