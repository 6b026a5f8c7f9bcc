"""Transaction ingest over HTTP, A/B: 100-entry transaction Bundles from N clients into `lienthong serve`.

Each round starts a server on a freshly emptied PostgreSQL database, posts the same Bundles (the
`bench_server.py` mix: Patient, 2 Encounter, 2 Condition, 5 Observation per patient), and samples the
PSS of the server's processes (master + workers) while the load runs. With `--b-src DIR` rounds alternate
between this checkout (A) and the tree at DIR (B, e.g. `git archive main | tar -x -C DIR`), so machine
noise hits both sides alike.

    python bench/bench_ingest.py --db postgresql://postgres@127.0.0.1:5432/bench_ingest --patients 3000 \
        --rounds 3 --b-src /tmp/main-tree
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_server import ingest, make_bundles  # noqa: E402


def pss_kb(pid: int) -> int:
    """Proportional set size of one process (kB), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    out = [pid]
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out += tree(int(child))
    except OSError:
        pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def reset(db: str) -> None:
    """Drop every table so the server creates the schema on an empty database."""
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


def start(db: str, workers: int, src: str | None) -> tuple[subprocess.Popen, str]:
    """`lienthong serve` on a free loopback port, importing the code from `src` when given."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [str(exe), "serve", "--db", db, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("lienthong serve did not start")


def one_round(args, bundles: list[dict], src: str | None) -> dict:
    """Ingest all bundles into an empty database; throughput, peak PSS and server CPU."""
    reset(args.db)
    proc, base = start(args.db, args.workers, src)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], sum(pss_kb(p) for p in tree(proc.pid)))

    sampler = threading.Thread(target=sample)
    try:
        ingest(base, bundles[:20], args.clients)  # warm-up: imports, plans, pools
        pids = tree(proc.pid)
        cpu0 = cpu_seconds(pids)
        sampler.start()
        secs, _ = ingest(base, bundles[20:], args.clients)
        cpu = cpu_seconds(pids) - cpu0
        done.set()
        sampler.join()
    finally:
        done.set()
        proc.terminate()
        proc.wait(timeout=30)
    n = sum(len(b["entry"]) for b in bundles[20:])
    return {
        "side": "B" if src else "A",
        "res_per_s": round(n / secs),
        "server_cpu_s_per_1000": round(cpu / n * 1000, 3),
        "peak_pss_mb": round(peak[0] / 1024, 1),
        "load": round(os.getloadavg()[0], 1),
    }


def child(db: str, patients: int) -> None:
    """In-process side of `--asgi`: the app over ASGI (no HTTP server), one client; prints CPU per 1,000."""
    import asyncio

    from fhir_server.settings import Settings
    from lienthong.app import create_app
    from lienthong.runtime import open_runtime

    reset(db)
    settings = Settings.from_env().with_(database_url=db)
    app = create_app(settings, store=open_runtime(settings).store)
    bodies = [json.dumps(b).encode() for b in make_bundles(patients, 20261202)]

    async def post(batch: list[bytes]) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench/fhir") as client:
            for body in batch:
                resp = await client.post("", content=body, headers={"Content-Type": "application/fhir+json"})
                assert resp.status_code == 200, resp.text[:300]

    asyncio.run(post(bodies[:10]))  # warm-up
    backends = backend_pids(db)
    cpu0, pg0 = time.process_time(), cpu_seconds(backends)
    asyncio.run(post(bodies[10:]))
    cpu, pg = time.process_time() - cpu0, cpu_seconds(backends) - pg0
    per = 1000 / ((len(bodies) - 10) * 100)
    out = {"cpu_s_per_1000": round(cpu * per, 3), "pg_cpu_s_per_1000": round(pg * per, 3)}
    print(json.dumps({**out, "total_cpu_s_per_1000": round((cpu + pg) * per, 3)}))


def backend_pids(db: str) -> list[int]:
    """PostgreSQL backends connected to the database `db` names (same machine), this query's excluded.

    The app's pool keeps its connections open after the warm-up, so their CPU counters cover the run."""
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).all()
    engine.dispose()
    return [pid for (pid,) in rows]


def asgi_round(args, src: str | None) -> dict:
    """CPU per 1,000 resources of the server-side Python (a child process) and of its PostgreSQL backends."""
    env = dict(os.environ)
    script = __file__
    if src:
        env["PYTHONPATH"] = src
        # The script puts its own tree first on sys.path: run B's copy, or B would import A's code.
        script = str(Path(src) / "bench" / "bench_ingest.py")
    out = (
        subprocess.run(
            [sys.executable, script, "--child", "--db", args.db, "--patients", str(args.patients)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return {"side": "B" if src else "A", **json.loads(out), "load": round(os.getloadavg()[0], 1)}


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="PostgreSQL URL of a scratch database (emptied each round)")
    ap.add_argument("--patients", type=int, default=3000, help="10 resources each")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--b-src", help="another source tree to alternate with (A/B)")
    ap.add_argument("--asgi", action="store_true", help="CPU per 1,000 resources in-process (no server)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.db, args.patients)
        return
    bundles = make_bundles(args.patients, 20261202)
    print(f"cores: {os.cpu_count()}  bundles: {len(bundles)} x 100  clients: {args.clients}", flush=True)
    results = []
    for i in range(args.rounds):
        sides = [None, args.b_src] if args.b_src else [None]
        if i % 2:
            sides.reverse()
        for src in sides:
            result = asgi_round(args, src) if args.asgi else one_round(args, bundles, src)
            results.append(result)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
