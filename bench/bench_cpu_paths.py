"""CPU cost of the main paths in one process: QĐ130 ingest, reads by id, searches, $everything.

Meant for A/B comparisons on a busy machine: run it under a tool that reports the process's CPU time
(`/usr/bin/time -v`, or pairwise with another checkout) rather than trusting wall time. Everything runs
in-process on a temporary SQLite file (no network, no server processes), so CPU seconds are the cost of
Lienthong's own code plus SQLite.

    python bench/bench_cpu_paths.py --visits 300 --reads 3000 --searches 300
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _app_and_store(url: str):
    """The deployed app over a wired store."""
    from fhir_server.settings import Settings
    from lienthong.app import create_app
    from lienthong.runtime import open_runtime

    settings = Settings(database_url=url)
    store = open_runtime(settings).store
    return create_app(settings, store=store), store


async def _run(args) -> None:
    from adapters.pipeline import ingest_many
    from adapters.synth import generate

    tmp = tempfile.mkdtemp(prefix="lienthong-cpu-")
    app, store = _app_and_store(f"sqlite:///{tmp}/cpu.db")
    data = generate(hospitals=3, visits=args.visits, seed=7)
    t0 = time.process_time()
    for i in range(0, len(data.visits), 50):
        chunk = data.visits[i : i + 50]
        ingest_many(store, [(v.xml, v.filename) for v in chunk], adapter="qd130")
    t1 = time.process_time()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench/fhir") as client:
        bundle = (await client.get("/Patient", params={"_count": "200"})).json()
        ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
        obs = (await client.get("/Observation", params={"_count": "200"})).json()
        obs_ids = [e["resource"]["id"] for e in obs.get("entry", [])]
        t2 = time.process_time()
        for i in range(args.reads):
            r = await client.get(f"/Observation/{obs_ids[i % len(obs_ids)]}")
            assert r.status_code == 200
        t3 = time.process_time()
        for i in range(args.searches):
            r = await client.get("/Observation", params={"subject": f"Patient/{ids[i % len(ids)]}"})
            assert r.status_code == 200
        t4 = time.process_time()
        for i in range(max(1, args.searches // 10)):
            r = await client.get(f"/Patient/{ids[i % len(ids)]}/$everything")
            assert r.status_code == 200
        t5 = time.process_time()
    print(f"visits={args.visits} ingest_cpu_ms_per_visit={(t1 - t0) * 1000 / args.visits:.2f}")
    print(f"reads={args.reads} read_cpu_us={(t3 - t2) * 1e6 / args.reads:.0f}")
    print(f"searches={args.searches} search_cpu_us={(t4 - t3) * 1e6 / args.searches:.0f}")
    print(f"everything_cpu_ms={(t5 - t4) * 1000 / max(1, args.searches // 10):.2f}")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=300)
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--searches", type=int, default=300)
    asyncio.run(_run(ap.parse_args()))


if __name__ == "__main__":
    main()
