"""QĐ130 adapter benchmark: conversion only (parse + map) and end to end into a database.

    python bench/bench_qd130.py --visits 10000 --db postgresql://postgres@127.0.0.1:5432/bench_qd130

Prints the core count and dataset size, then visits/s, resources/s and per-visit latency percentiles,
single process and with one worker process per core (each worker has its own DB connection pool).
`--check-ab` instead times the agency-style check during ingest (LIENTHONG_CHECK_INGEST) off and on,
interleaved: conversion off/on/off/on, then end to end on four quarters of the dataset (off/on/off/on).
The --db database should be a scratch database: the bench writes ~35 resources per visit into it.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.qd130.plugin import Qd130Adapter  # noqa: E402
from adapters.synth import generate  # noqa: E402

_XMLS: list[bytes] = []
_OPTIONS: dict = {"check": False}


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else 0.0


def _convert(indices: range) -> tuple[int, int, list[float]]:
    """Parse + map a slice of the dataset; returns (visits, resources, latencies)."""
    ad = Qd130Adapter()
    n = res = 0
    lat = []
    for i in indices:
        t = time.perf_counter()
        for rec in ad.parse(_XMLS[i], _OPTIONS).records:
            m = ad.to_fhir(rec, _OPTIONS)
            if m.bundle is None:
                raise SystemExit(f"record {rec.key} failed: {m.errors}")
            res += len(m.bundle["entry"])
        lat.append(time.perf_counter() - t)
        n += 1
    return n, res, lat


def _ingest(args: tuple[str, range, int]) -> tuple[int, int, list[float]]:
    """End-to-end ingest of a slice, `batch` files per group commit; returns (visits, resources, latencies)."""
    from adapters.pipeline import ingest_many
    from fhir_server.interactions.group import STATS
    from fhir_server.settings import Settings
    from lienthong.runtime import open_runtime

    url, indices, batch = args[:3]
    options = {"check": args[3]} if len(args) > 3 else None
    store = open_runtime(Settings.from_env().with_(database_url=url), pool_size=2, create=False).store
    n = res = 0
    lat = []
    ids = list(indices)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        t = time.perf_counter()
        results = ingest_many(store, [(_XMLS[i], "bench") for i in chunk], adapter="qd130", options=options)
        for i, r in zip(chunk, results):
            if r.status != "processed":
                raise SystemExit(f"visit {i} not processed: {r.as_dict()}")
            res += sum(x.resources for x in r.records)
        # Every file of a batch is acknowledged when the batch commits: that is its latency.
        lat += [time.perf_counter() - t] * len(chunk)
        n += len(chunk)
    store.close()
    if STATS.retries or STATS.splits:
        print(f"  worker {os.getpid()}: {STATS.retries} group retries, {STATS.splits} splits")
    return n, res, lat


def _split(n: int, k: int) -> list[range]:
    step = (n + k - 1) // k
    return [range(i, min(n, i + step)) for i in range(0, n, step)]


def _report(label: str, results: list[tuple[int, int, list[float]]], wall: float) -> None:
    visits = sum(r[0] for r in results)
    res = sum(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    print(
        f"{label:<38} {visits / wall:8.0f} visits/s {res / wall:9.0f} resources/s   "
        f"p50 {_pct(lat, 50):6.2f} ms  p95 {_pct(lat, 95):6.2f} ms  p99 {_pct(lat, 99):6.2f} ms  "
        f"({visits} visits in {wall:.1f}s)"
    )


def _run(label: str, fn, chunks: list, workers: int) -> None:
    t = time.perf_counter()
    if workers == 1:
        results = [fn(c) for c in chunks]
    else:
        with get_context("fork").Pool(workers) as pool:
            results = pool.map(fn, chunks)
    _report(label, results, time.perf_counter() - t)


def _check_ab(a, n: int) -> None:
    """Check during ingest off vs on, interleaved so machine load hits both alike."""
    for flag in (False, True, False, True):
        _OPTIONS["check"] = flag
        _run(f"conversion, 1 process, check {'on' if flag else 'off'}", _convert, [range(n)], 1)
    if not a.db:
        return
    from fhir_server.settings import Settings
    from lienthong.runtime import open_runtime

    open_runtime(Settings.from_env().with_(database_url=a.db)).store.close()
    for q, part in enumerate(_split(n, 4)):
        flag = q % 2 == 1
        _run(
            f"end to end, quarter {q + 1}, check {'on' if flag else 'off'}",
            _ingest,
            [(a.db, part, a.batch, flag)],
            1,
        )


def main() -> None:
    """Generate the dataset once, then time conversion and (with --db) end-to-end ingest."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=10000)
    ap.add_argument("--hospitals", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", help="database URL for the end-to-end run (scratch database)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-single", action="store_true", help="only the multi-process runs")
    ap.add_argument(
        "--batch", type=int, default=50, help="files per group commit end to end (1 = one by one)"
    )
    ap.add_argument("--check-ab", action="store_true", help="time ingest with the check off and on (A/B)")
    a = ap.parse_args()

    t = time.perf_counter()
    ds = generate(hospitals=a.hospitals, visits=a.visits, seed=a.seed)
    _XMLS.extend(v.xml for v in ds.visits)
    del ds
    gc.collect()
    gc.freeze()  # the dataset is long-lived: keep it out of every collection
    size = sum(len(x) for x in _XMLS)
    print(f"cores: {os.cpu_count()}  workers: {a.workers}  python {sys.version.split()[0]}")
    print(
        f"dataset: {len(_XMLS)} synthetic visits (QĐ130 envelopes), {a.hospitals} hospitals, "
        f"{size / 1e6:.1f} MB, generated in {time.perf_counter() - t:.1f}s"
    )
    _convert(range(min(50, len(_XMLS))))  # warm caches (YAML, profile sets)
    n = len(_XMLS)
    if a.check_ab:
        _check_ab(a, n)
        return
    if not a.skip_single:
        _run("conversion, 1 process", _convert, [range(n)], 1)
    if a.workers > 1:
        _run(f"conversion, {a.workers} processes", _convert, _split(n, a.workers), a.workers)
    if a.db:
        from fhir_server.settings import Settings
        from lienthong.runtime import open_runtime

        # Create the schema once, before the workers race for it.
        open_runtime(Settings.from_env().with_(database_url=a.db)).store.close()
        # First pass writes fresh data; the second re-sends the same files (idempotent no-op writes).
        if a.workers > 1:
            _run(
                f"end to end (ingest), {a.workers} processes, batch {a.batch}",
                _ingest,
                [(a.db, c, a.batch) for c in _split(n, a.workers)],
                a.workers,
            )
        else:
            _run(f"end to end (ingest), 1 process, batch {a.batch}", _ingest, [(a.db, range(n), a.batch)], 1)
        if not a.skip_single:
            _run(f"re-ingest (no-op), 1 process, batch {a.batch}", _ingest, [(a.db, range(n), a.batch)], 1)
    lat_note = statistics.mean([len(x) for x in _XMLS[:100]]) / 1000
    print(f"mean envelope size {lat_note:.1f} kB")


if __name__ == "__main__":
    main()
