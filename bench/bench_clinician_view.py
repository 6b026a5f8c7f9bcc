"""Clinician view benchmark: server time of /ui/patient/{id} for one person with ~2,000 resources at 3 hospitals.

    .venv/bin/python bench/bench_clinician_view.py --db postgresql://postgres@127.0.0.1:5432/bench_clinician

Data is synthetic QĐ130 XML (adapters.synth) sent through the real ingest pipeline, then linked by the
identity service: the focus person has --focus-visits visits over three hospitals (about 33 resources a
visit: vitals, labs, drugs, documents), among --background-visits visits of other people. Then --calls
requests are timed in-process through the ASGI app (no network: the server's own time, page rendered
and sent), and the view model alone (`patient_view`: $everything + summary, charts, trends). --skip-load
reuses a loaded database. Target (issue 17): p99 < 100 ms at 2,000 resources.

The page model and its HTML are cached per record version (LIENTHONG_UI_VIEW_CACHE): repeated calls time
a view of an unchanged record (every call still reads the record's fingerprint from the database).
`--cache 0` times the cold path, as the first view of a record. `--rebuild` times the model after a
write: the page model is rebuilt each call from resources parsed before (one new lab parses one row).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from fhir_server.operations.everything import everything
from fhir_server.settings import Settings
from fhir_server.ui import view_cache
from fhir_server.ui.view import patient_view
from lienthong.runtime import open_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.focus_person import focus_patient, load, recreate_database  # noqa: E402


def pct(values: list[float], p: float) -> float:
    """p-th percentile (nearest rank) of a sample, in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def report(name: str, wall: list[float], cpu: list[float], calls: int) -> None:
    """One line: wall-clock p50/p99 and this process's CPU time p50/p99 (the machine is shared: CPU shows the cost)."""
    print(
        f"{name:40s} wall p50 {pct(wall, 50):6.1f} p99 {pct(wall, 99):6.1f} ms · "
        f"cpu p50 {pct(cpu, 50):6.1f} p99 {pct(cpu, 99):6.1f} ms ({calls}, mean {statistics.mean(wall) * 1000:.0f})"
    )


def main() -> None:
    """Load (unless --skip-load), then time the view model and the page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("LIENTHONG_BENCH_DB", "postgresql://postgres@127.0.0.1:5432/bench_clinician"),
    )
    ap.add_argument("--focus-visits", type=int, default=60)
    ap.add_argument("--background-visits", type=int, default=300)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false", help="skip gc.freeze()")
    ap.add_argument("--cache", type=int, default=None, help="patients kept in the view cache (0: off)")
    ap.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the page model before each model call, keeping parsed resources (a view after a write)",
    )
    args = ap.parse_args()
    if not args.skip_load:
        recreate_database(args.db)
    settings = Settings.from_env().with_(database_url=args.db, ui_view_cache=args.cache)
    cache = settings.ui_view_cache
    store = open_runtime(settings, pool_size=4).store
    if not args.skip_load:
        load(store, args.focus_visits, args.background_visits, hospitals=3, seed=17)
    pid = focus_patient(store)
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    full = everything(store, pid)
    view = patient_view(store, pid, cache_size=cache)
    print(
        f"cores={os.cpu_count()} db={store.engine.dialect.name} focus: {len(full.patient_ids)} linked records, "
        f"{full.total} resources in $everything, {len(view['hospitals'])} hospitals, {len(view['timeline'])} visits, "
        f"{len(view['lab_trends'])} lab trends, {len(view['vital_charts'])} vital charts"
    )

    from lienthong.app import create_app

    app = create_app(settings, store=store)
    if args.gc_freeze:  # as `lienthong serve` workers do once their app is built (lienthong/app.py)
        gc.collect()
        gc.freeze()
    print(f"gc.freeze() after setup: {args.gc_freeze}")
    print(f"view cache: {cache} patients" + (" (off: every call is cold)" if not cache else ""))
    for _ in range(5):
        patient_view(store, pid, cache_size=cache)
    lat, cpu = [], []
    for _ in range(args.calls):
        if args.rebuild:
            view_cache.drop_models(store)
        t, c = time.perf_counter(), time.process_time()
        patient_view(store, pid, cache_size=cache)
        lat.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    report("patient_view() (model)" + (", rebuilt" if args.rebuild else ""), lat, cpu, args.calls)
    if args.rebuild:
        return

    async def http_bench(url: str) -> tuple[list[float], list[float], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(5):
                (await client.get(url)).raise_for_status()
            out, cpu, size = [], [], 0
            for _ in range(args.calls):
                t, c = time.perf_counter(), time.process_time()
                r = await client.get(url)
                out.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                r.raise_for_status()
                size = len(r.content)
            return out, cpu, size

    for name, url in (
        ("GET /ui/patient/{id}", f"/ui/patient/{pid}"),
        ("GET /ui/patient/{id}?print=1", f"/ui/patient/{pid}?print=1"),
    ):
        lat, cpu, size = asyncio.run(http_bench(url))
        report(f"{name} ({size / 1024:.0f} KiB)", lat, cpu, args.calls)
    print(f"load average after the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
