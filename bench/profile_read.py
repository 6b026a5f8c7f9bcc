"""Where a read's CPU goes: the server's own thread profiled while a client in another process reads.

Starts the real app under uvicorn (httptools, one event loop) in a thread of this process with
cProfile on that thread only, loads a few hundred patients, then lets a separate client process read
by id (and search by identifier) for a fixed count. The server thread's CPU is split by where the
time was spent: HTTP parsing and the ASGI server, Starlette/FastAPI routing, middleware and
dependencies, Lienthong's code, SQLAlchemy, the database driver, JSON. The client's CPU is not in
the profile (other process), so the split is the server's alone.

    python bench/profile_read.py --db postgresql://postgres@127.0.0.1:5432/bench_profile --reads 5000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yappi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Longest matching fragment of a function's file path wins; the rest is "other".
GROUPS = [
    ("uvicorn", "HTTP server + parsing (uvicorn, httptools, h11)"),
    ("httptools", "HTTP server + parsing (uvicorn, httptools, h11)"),
    ("/h11/", "HTTP server + parsing (uvicorn, httptools, h11)"),
    ("asyncio", "event loop (asyncio)"),
    ("/starlette/", "routing, middleware, dependencies (Starlette/FastAPI)"),
    ("/fastapi/", "routing, middleware, dependencies (Starlette/FastAPI)"),
    ("/anyio/", "routing, middleware, dependencies (Starlette/FastAPI)"),
    ("/sqlalchemy/", "SQLAlchemy (statements, connections, pool)"),
    ("/psycopg", "database driver + round trip (psycopg / sqlite3)"),
    ("sqlite3", "database driver + round trip (psycopg / sqlite3)"),
    ("orjson", "JSON (orjson)"),
    ("/fhir_server/", "Lienthong server code"),
    ("/lienthong/", "Lienthong server code"),
    ("/adapters/", "Lienthong server code"),
]


def _group(filename: str) -> str:
    for fragment, name in GROUPS:
        if fragment in filename:
            return name
    if filename in ("", "builtins") or filename.startswith("~") or "/" not in filename:
        return "builtins (C calls: socket I/O, str/dict work)"
    return "other Python (stdlib, logging, …)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(base: str, paths: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        for p in paths:
            assert c.get(p).status_code == 200


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="sqlite:///./profile-read.db")
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--reads", type=int, default=5000)
    ap.add_argument("--top", type=int, default=0, help="also list the N functions with the most own CPU")
    ap.add_argument(
        "--no-direct-route", action="store_true", help="every request through FastAPI's router (A/B)"
    )
    ap.add_argument(
        "--no-search-templates",
        action="store_true",
        help="every search statement built by SQLAlchemy, not compiled once per shape (A/B)",
    )
    ap.add_argument(
        "--no-read-autocommit", action="store_true", help="reads and searches inside BEGIN/ROLLBACK (A/B)"
    )
    ap.add_argument(
        "--only", default="", help="comma-separated labels to run: read, identifier, patient, name"
    )
    ap.add_argument("--client", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client is not None:  # the client process: base URL then paths on stdin
        _client(args.client[0], sys.stdin.read().split())
        return

    import uvicorn

    from fhir_server.settings import Settings
    from lienthong.app import create_app
    from lienthong.runtime import open_runtime

    settings = Settings(
        database_url=args.db,
        link_on_ingest=False,
        direct_route=not args.no_direct_route,
        search_templates=not args.no_search_templates,
        read_autocommit=not args.no_read_autocommit,
    )
    store = open_runtime(settings).store
    app = create_app(settings, store=store)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http="httptools")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/fhir"
    ids = []
    with httpx.Client(base_url=base, timeout=60) as c:
        # Reuse what an earlier run loaded (same identifiers): A/B runs then search the same data.
        found = c.get("/Patient", params={"identifier": "urn:profile|p0"}).json().get("entry", [])
        if found:
            for i in range(args.patients):
                hit = c.get("/Patient", params={"identifier": f"urn:profile|p{i}"}).json()["entry"]
                ids.append(hit[0]["resource"]["id"])
        for i in range(len(ids), args.patients):
            patient = {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:profile", "value": f"p{i}"}],
                "name": [{"family": "NGUYỄN", "given": ["VĂN", "AN"]}],
            }
            ids.append(c.post("/Patient", json=patient).json()["id"])
            # Five weights each, so a patient-scoped search has a page to return.
            entries = [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                        "subject": {"reference": f"Patient/{ids[-1]}"},
                        "valueQuantity": {"value": 60 + k, "unit": "kg"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                }
                for k in range(5)
            ]
            c.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    runs = [
        ("read by id", [f"/Patient/{ids[i % len(ids)]}" for i in range(args.reads)]),
        (
            "identifier search",
            [f"/Patient?identifier=urn:profile|p{i % len(ids)}" for i in range(args.reads)],
        ),
        (
            "patient-scoped search",
            [f"/Observation?patient=Patient/{ids[i % len(ids)]}&_count=20" for i in range(args.reads)],
        ),
        # Every profile patient is NGUYỄN VĂN AN: a full page of 20 (names differ only in case, so the
        # statement's shape is the same and the value cycles).
        (
            "name search",
            [f"/Patient?name={('nguyen%20van', 'NGUYEN%20VAN')[i % 2]}&_count=20" for i in range(args.reads)],
        ),
    ]
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    for label, paths in runs:
        if only and label.split()[0].split("-")[0] not in only:
            continue
        # yappi measures CPU time in every thread (the event loop and the thread pool that runs
        # synchronous handlers), not wall time spent waiting on sockets.
        yappi.clear_stats()
        yappi.set_clock_type("cpu")
        yappi.start(builtins=True)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--client", base], input="\n".join(paths), text=True, check=True
        )
        elapsed = time.perf_counter() - t0
        yappi.stop()
        _report(label, yappi.get_func_stats(), len(paths), elapsed, args.top)
    server.should_exit = True
    thread.join(10)


def _report(label: str, stats, n: int, elapsed: float, top: int) -> None:
    totals: dict[str, float] = {}
    for fs in stats:
        group = _group(fs.module or "")
        totals[group] = totals.get(group, 0.0) + fs.tsub
    total = sum(totals.values())
    print(
        f"\n{label}: {n} requests in {elapsed:.2f} s wall; server CPU (all threads, yappi) "
        f"{total * 1e6 / n:.0f} µs/request (the profiler inflates absolute times; read the shares)"
    )
    for name, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {t / total:6.1%}  {name}")
    for fs in sorted(stats, key=lambda f: -f.tsub)[:top]:
        print(
            f"    {fs.tsub / total:6.1%}  {fs.name}  ({fs.module.rsplit('site-packages/', 1)[-1]}:{fs.lineno})"
        )


if __name__ == "__main__":
    main()
