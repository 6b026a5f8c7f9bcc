"""Patient/$everything benchmark: one person with ~500 resources at two hospitals among background patients.

    .venv/bin/python bench/bench_everything.py --db postgresql://postgres@127.0.0.1:5432/bench_everything

Data is synthetic QĐ130 XML (adapters.synth) ingested through the real pipeline, then linked by the
identity service: the focus person has --focus-visits visits split over two hospitals (~33 resources a
visit), the background --background-visits visits of other people over 8 hospitals. Then --calls
$everything calls are timed: the Python function (SQL + row fetch) and the full HTTP request through the
ASGI app (Bundle serialisation included). --skip-load reuses an already loaded database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import func, select, text

from fhir_server.operations.everything import Query, everything
from fhir_server.settings import Settings
from fhir_server.storage.sql.compartment import statement_and_params
from fhir_server.storage.sql.schema import resource
from lienthong.runtime import open_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.focus_person import focus_patient, load, recreate_database  # noqa: E402


def pct(values: list[float], p: float) -> float:
    """p-th percentile (nearest rank) of a sample, in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def time_calls(fn, calls: int) -> list[float]:
    """Wall time of each call after 10 warm-up calls."""
    for _ in range(10):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    """Load (unless --skip-load), then time $everything."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("LIENTHONG_BENCH_DB", "postgresql://postgres@127.0.0.1:5432/bench_everything"),
    )
    ap.add_argument("--focus-visits", type=int, default=15)
    ap.add_argument("--background-visits", type=int, default=600)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--explain", action="store_true", help="print the PostgreSQL plan of the main query")
    args = ap.parse_args()
    if not args.skip_load:
        recreate_database(args.db)
    settings = Settings.from_env().with_(database_url=args.db)
    store = open_runtime(settings, pool_size=4).store
    if not settings.read_autocommit:  # issue 20 A/B: LIENTHONG_READ_AUTOCOMMIT=false
        store.read_in_transactions()
    if not args.skip_load:
        load(store, args.focus_visits, args.background_visits, hospitals=2, seed=7)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    with store.engine.connect() as conn:
        n_res = conn.execute(select(func.count()).select_from(resource)).scalar_one()
        n_pat = conn.execute(select(func.count()).where(resource.c.res_type == "Patient")).scalar_one()
    pid = focus_patient(store)
    full = everything(store, pid)
    print(
        f"cores={os.cpu_count()} db={store.engine.dialect.name} resources={n_res} patients={n_pat} "
        f"focus: {len(full.patient_ids)} linked Patient records, $everything returns {full.total} resources"
    )

    if args.explain and store.engine.dialect.name == "postgresql":
        stmt, params = statement_and_params(full.patient_ids, Query())
        sql = str(stmt.params(params).compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as conn:
            for (line,) in conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)):
                print("  ", line)

    cases = {
        "function, all": lambda: everything(store, pid),
        "function, _count=50": lambda: everything(store, pid, Query(count=50)),
        "function, start/end 90 days": lambda: everything(
            store, pid, Query(start=1_704_067_200_000_000, end=1_704_067_200_000_000 + 90 * 86_400_000_000)
        ),
    }
    for name, fn in cases.items():
        lat = time_calls(fn, args.calls)
        print(f"{name:32s} p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms  ({args.calls} calls)")

    import httpx

    from lienthong.app import create_app

    app = create_app(settings.with_(max_count=1000), store=store)

    async def http_bench() -> list[float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench/fhir") as client:
            url = f"/Patient/{pid}/$everything?_count=1000"
            for _ in range(10):
                (await client.get(url)).raise_for_status()
            out = []
            for _ in range(args.calls):
                t = time.perf_counter()
                r = await client.get(url)
                out.append(time.perf_counter() - t)
                r.raise_for_status()
            return out

    lat = asyncio.run(http_bench())
    print(
        f"{'HTTP GET, _count=1000 (one page)':32s} p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms  "
        f"({args.calls} calls, mean {statistics.mean(lat) * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    main()
