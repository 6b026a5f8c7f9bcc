"""Cost of the data bindings (issues 13/14): QĐ130 ingest with and without the facility binding of a
hospital token, and the province patient list computed at a province-bound `$export` kick-off.

Runs the pipeline in-process over --db (a fresh SQLite file by default), interleaving A/B rounds so the
shared machine's load hits both sides alike; prints medians and their ratio.

    python bench/bench_bind.py --rounds 6 --files 20
    # the province patient list over N generated visit facts (PostgreSQL, bench_reports' generator):
    python bench/bench_bind.py --facts-db postgresql://postgres@127.0.0.1:5432/bench_bind --facts 200000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.pipeline import ingest  # noqa: E402
from adapters.synth.envelope import build_envelope, read_files  # noqa: E402
from fhir_server.operations.export import province_patients  # noqa: E402
from fhir_server.settings import Settings  # noqa: E402
from lienthong.runtime import open_runtime  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "qd130"


def payload() -> bytes:
    """A two-record file: one Chợ Rẫy record (accepted under binding 79001) and one Bạch Mai record."""
    own = read_files((SAMPLES / "79001-ngoai-tru.xml").read_bytes())[0]
    other = read_files((SAMPLES / "01001-noi-tru.xml").read_bytes())[0]
    return build_envelope("79001", [own, other])


def run(store, settings, data: bytes, files: int, bound: str | None) -> float:
    """Seconds to ingest `files` copies of the payload (re-sends: the same resources are rewritten)."""
    options = {"bound_facility": bound} if bound else {}
    t0 = time.perf_counter()
    for _ in range(files):
        ingest(store, data, source="bench", adapter="qd130", options=options, settings=settings)
    return time.perf_counter() - t0


def facts(url: str, n: int, rounds: int) -> None:
    """Time the province patient list (kick-off of a province-bound export) over n visit facts."""
    from bench.bench_reports import load
    from fhir_server.storage import open_store

    store = open_store(url)
    print(f"loaded {n} visit facts in {load(url, n):.1f} s")
    for code in ("79", "46"):
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            ids = province_patients(store, code)
            times.append(time.perf_counter() - t0)
        print(
            f"province_patients({code!r}): {len(ids)} patients, median {statistics.median(times) * 1000:.0f} ms"
        )
    os.system("uptime")


def main() -> None:
    """Interleaved A/B rounds; medians and ratio."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=None)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--facts-db", default=None, help="PostgreSQL URL for the province patient-list run")
    ap.add_argument("--facts", type=int, default=200_000)
    args = ap.parse_args()
    if args.facts_db:
        facts(args.facts_db, args.facts, args.rounds)
        return
    tmp = tempfile.mkdtemp()
    db = args.db or f"sqlite:///{os.path.join(tmp, 'bind.db')}"
    settings = Settings(database_url=db)
    store = open_runtime(settings).store
    data = payload()
    run(store, settings, data, 2, None)  # warm-up: first writes, caches
    free, bound = [], []
    for _ in range(args.rounds):
        free.append(run(store, settings, data, args.files, None))
        bound.append(run(store, settings, data, args.files, "79001"))
    f, b = statistics.median(free), statistics.median(bound)
    print(
        f"ingest {args.files} files x 2 records: unbound {f * 1000:.0f} ms, bound {b * 1000:.0f} ms, "
        f"ratio bound/unbound {b / f:.2f} (bound writes 1 record + 1 dead letter per file)"
    )
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        ids = province_patients(store, "79")
        times.append(time.perf_counter() - t0)
    print(f"province_patients('79'): {len(ids)} patients, median {statistics.median(times) * 1000:.1f} ms")
    os.system("uptime")


if __name__ == "__main__":
    main()
