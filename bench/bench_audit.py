"""Audit overhead: read latency (p50/p99) and throughput with LIENTHONG_AUDIT on vs off.

Starts `lienthong serve` (one worker, JWT auth on) over a fresh PostgreSQL database, seeds patients
with Observations, then runs concurrent clients reading random Patients and Observations. Rounds
alternate off/on with a fresh server each time, on the same data, so both see the same machine load.

    .venv/bin/python bench/bench_audit.py --patients 500 --clients 8 --reads 4000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from jose import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vn_people import VietnamesePeople  # noqa: E402
from tests.processes import drop_pg_database, new_pg_database  # noqa: E402

SECRET = "bench-audit-khoa-bi-mat-dai-du-32-byte-!!"


def _token() -> str:
    claims = {"sub": "bench-his-79001", "scope": "system/*.*", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(db: str, audit: str) -> tuple[subprocess.Popen, str]:
    """`lienthong serve` on a loopback port with auth on and audit on/off; returns (process, base)."""
    port = _free_port()
    env = {
        **os.environ,
        "LIENTHONG_AUTH": "jwt",
        "LIENTHONG_JWT_SECRET": SECRET,
        "LIENTHONG_AUDIT": audit,
        "LIENTHONG_LINK_ON_INGEST": "false",
    }
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [str(exe), "serve", "--db", db, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.2)


def seed(base: str, n: int) -> list[str]:
    """n Patients with one glucose Observation each (transaction Bundles of 50 patients)."""
    rng = random.Random(13)
    people = VietnamesePeople()
    headers = {"Authorization": f"Bearer {_token()}", "Content-Type": "application/fhir+json"}
    refs: list[str] = []
    with httpx.Client(headers=headers, timeout=60) as c:
        for start_at in range(0, n, 50):
            entries = []
            for _ in range(min(50, n - start_at)):
                purl = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
                entries.append(
                    {
                        "fullUrl": purl,
                        "resource": people.person(rng),
                        "request": {"method": "POST", "url": "Patient"},
                    }
                )
                entries.append(
                    {
                        "request": {"method": "POST", "url": "Observation"},
                        "resource": {
                            "resourceType": "Observation",
                            "status": "final",
                            "code": {
                                "coding": [{"system": "http://loinc.org", "code": "2345-7"}],
                                "text": "Đường huyết",
                            },
                            "subject": {"reference": purl},
                            "valueQuantity": {"value": round(rng.uniform(4, 11), 1)},
                        },
                    }
                )
            r = c.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            r.raise_for_status()
            refs += [e["response"]["location"].split("/_history")[0] for e in r.json()["entry"]]
    return refs


def run_reads(base: str, refs: list[str], clients: int, reads: int) -> tuple[list[float], float]:
    """Latencies (s) of `reads` GETs spread over `clients` threads, and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    per = reads // clients
    headers = {"Authorization": f"Bearer {_token()}", "Accept": "application/fhir+json"}

    def worker(seed_value: int) -> None:
        rng = random.Random(seed_value)
        mine = []
        with httpx.Client(headers=headers, timeout=30) as c:
            for _ in range(per):
                ref = rng.choice(refs)
                t = time.perf_counter()
                r = c.get(f"{base}/{ref}")
                mine.append(time.perf_counter() - t)
                assert r.status_code == 200, r.status_code
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0


def _pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1] * 1000


def main() -> None:
    """Run the interleaved off/on rounds and print p50/p99/throughput per mode."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reads", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    db = new_pg_database(args.pg, "bench_audit")
    results: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
    try:
        proc, base = start(db, "off")
        try:
            refs = seed(base, args.patients)
        finally:
            proc.terminate()
            proc.wait(30)
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                proc, base = start(db, mode)
                try:
                    run_reads(base, refs, args.clients, min(400, args.reads))  # warm-up
                    lat, wall = run_reads(base, refs, args.clients, args.reads)
                finally:
                    proc.terminate()
                    proc.wait(60)  # shutdown flushes the audit queue
                results[mode].append((_pct(lat, 50), _pct(lat, 99), len(lat) / wall))
                print(
                    f"audit={mode:3s} p50={_pct(lat, 50):6.2f} ms  p99={_pct(lat, 99):6.2f} ms  "
                    f"{len(lat) / wall:7.0f} reads/s",
                    flush=True,
                )
        for mode, rows in results.items():
            print(
                f"median over rounds, audit={mode}: p50={statistics.median(r[0] for r in rows):.2f} ms "
                f"p99={statistics.median(r[1] for r in rows):.2f} ms "
                f"{statistics.median(r[2] for r in rows):.0f} reads/s"
            )
        import psycopg

        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM resource WHERE res_type = 'AuditEvent'").fetchone()
        print(f"AuditEvents stored: {row[0] if row else 0}")
    finally:
        drop_pg_database(db)


if __name__ == "__main__":
    main()
