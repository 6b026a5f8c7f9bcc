"""Broker ingest throughput: QĐ130 files and HL7 v2 messages through NATS JetStream with 1 and 2
`lienthong worker` processes, against direct in-process ingest of the same payloads, interleaved on
the same machine; plus the broker's own cost per message (publish + deliver + ack, no database).

    .venv/bin/python bench/bench_broker.py --files 1000 --messages 2000 --rounds 2

Each run gets a fresh PostgreSQL database (created next to --pg and dropped after) and its own
stream. Broker runs: every payload is archived and queued first (the front end's rate is printed),
then the workers start; the clock runs from the first commit to the last (process start-up is not
counted). Direct runs: `ingest_many` with group commits of `--batch` payloads in 1 or 2 processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_crash import Cluster, delete_stream, inbox_counts  # noqa: E402
from tests.processes import drop_pg_database, new_pg_database  # noqa: E402

_PAYLOADS: list[bytes] = []


def _direct_slice(args: tuple[str, str, range, int]) -> int:
    from adapters.pipeline import ingest_many
    from fhir_server.settings import Settings
    from lienthong.runtime import open_runtime

    db, adapter, idx, batch = args
    rt = open_runtime(Settings.from_env().with_(database_url=db), pool_size=2, create=False)
    ids = list(idx)
    for i in range(0, len(ids), batch):
        ingest_many(rt.store, [(_PAYLOADS[j], "bench") for j in ids[i : i + batch]], adapter=adapter)
    rt.store.close()
    return len(ids)


def direct(db: str, adapter: str, batch: int, processes: int) -> float:
    """Payloads/s of plain ingest (no broker) in `processes` processes."""
    n = len(_PAYLOADS)
    step = (n + processes - 1) // processes
    slices = [(db, adapter, range(i, min(n, i + step)), batch) for i in range(0, n, step)]
    t = time.perf_counter()
    if processes == 1:
        _direct_slice(slices[0])
    else:
        with get_context("fork").Pool(processes) as pool:
            pool.map(_direct_slice, slices)
    return n / (time.perf_counter() - t)


def broker(db: str, nats: str, adapter: str, batch: int, workers: int) -> tuple[float, float]:
    """(payloads/s through the workers, payloads/s of archive + publish at the front end)."""
    from adapters.broker import enqueue, publisher
    from fhir_server.settings import Settings
    from lienthong.runtime import open_runtime

    stream = f"LT_BENCH_{uuid.uuid4().hex[:8].upper()}"
    settings = Settings(database_url=db, broker_url=nats, broker_stream=stream)
    rt = open_runtime(settings)

    async def queue() -> float:
        t = time.perf_counter()
        for i in range(0, len(_PAYLOADS), 100):
            await enqueue(
                rt.store, settings, [(p, "bench") for p in _PAYLOADS[i : i + 100]], adapter, None, {}
            )
        rate = len(_PAYLOADS) / (time.perf_counter() - t)
        await publisher(BrokerConfig(nats, stream)).close()
        return rate

    from adapters.broker import BrokerConfig

    front = asyncio.run(queue())
    rt.store.close()
    cluster = Cluster(db, nats, stream, Path(tempfile.mkdtemp(prefix="lt-bench-")), ack_wait=60, batch=batch)
    try:
        for _ in range(workers):
            cluster.start_worker()
        # The clock starts at the first commit, so process start-up (imports, ~5 s here) is not counted.
        while inbox_counts(db)["distinct_committed"] == 0:
            time.sleep(0.05)
        t = time.perf_counter()
        first = inbox_counts(db)["distinct_committed"]
        while True:
            c = inbox_counts(db)
            if not c["by_status"].get("queued"):
                break
            time.sleep(0.1)
        rate = (len(_PAYLOADS) - first) / (time.perf_counter() - t)
    finally:
        cluster.stop()
        asyncio.run(delete_stream(nats, stream))
    return rate, front


async def broker_cost(nats: str, n: int) -> float:
    """Microseconds per message for publish (with stream ack) + pull + ack, no database."""
    from adapters.broker import BrokerConfig, connect, consumer_config, publish_many

    cfg = BrokerConfig(nats, f"LT_COST_{uuid.uuid4().hex[:8].upper()}")
    nc, js = await connect(cfg, "bench")
    sub = await js.pull_subscribe(
        f"{cfg.prefix}.>", durable="workers", stream=cfg.stream, config=consumer_config(cfg)
    )
    t = time.perf_counter()
    for i in range(0, n, 100):
        await publish_many(js, cfg, [(j, "qd130") for j in range(i, min(n, i + 100))])
    got = 0
    while got < n:
        for m in await sub.fetch(50, timeout=5):
            await m.ack()
            got += 1
    dt = time.perf_counter() - t
    await js.delete_stream(cfg.stream)
    await nc.close()
    return dt / n * 1e6


def main() -> None:
    """Interleaved rounds: direct 1 process, broker 1 worker, broker 2 workers (and direct 2 processes)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument(
        "--pg",
        default=os.environ.get("LIENTHONG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument("--nats", default=os.environ.get("LIENTHONG_BENCH_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument("--only", choices=["qd130", "hl7v2", "cost"], action="append")
    a = ap.parse_args()
    only = set(a.only or ["qd130", "hl7v2", "cost"])
    print(
        f"cores: {os.cpu_count()}  files: {a.files}  messages: {a.messages}  rounds: {a.rounds}  batch: {a.batch}"
    )
    if "cost" in only:
        cost = asyncio.run(broker_cost(a.nats, 5000))
        print(f"broker cost per message (publish+ack, pull+ack, no database): {cost:.0f} µs")
    for adapter in ("qd130", "hl7v2"):
        if adapter not in only:
            continue
        _PAYLOADS.clear()
        if adapter == "qd130":
            from adapters.synth import generate

            _PAYLOADS.extend(v.xml for v in generate(hospitals=5, visits=a.files, seed=2).visits)
        else:
            from bench.bench_mllp import make_messages

            _PAYLOADS.extend(make_messages(a.messages, seed=5))
        results: dict[str, list[float]] = {}
        for r in range(a.rounds):
            for label, run in (
                ("direct, 1 process", lambda db: direct(db, adapter, a.batch, 1)),
                ("broker, 1 worker", lambda db: broker(db, a.nats, adapter, a.batch, 1)),
                ("direct, 2 processes", lambda db: direct(db, adapter, a.batch, 2)),
                ("broker, 2 workers", lambda db: broker(db, a.nats, adapter, a.batch, 2)),
            ):
                db = new_pg_database(a.pg, "lienthong_bench_broker")
                try:
                    from fhir_server.settings import Settings
                    from lienthong.runtime import open_runtime

                    open_runtime(Settings(database_url=db)).store.close()
                    out = run(db)
                finally:
                    drop_pg_database(db)
                rate = out[0] if isinstance(out, tuple) else out
                results.setdefault(label, []).append(rate)
                extra = f"  (front end archive+publish {out[1]:.0f}/s)" if isinstance(out, tuple) else ""
                print(f"{adapter} round {r + 1}: {label:<22} {rate:7.0f} payloads/s{extra}", flush=True)
        for label, rates in results.items():
            print(
                f"{adapter} median {label:<22} {statistics.median(rates):7.0f} payloads/s over {len(rates)} run(s)"
            )


if __name__ == "__main__":
    main()
