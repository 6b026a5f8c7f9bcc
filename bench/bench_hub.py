"""Federated query latency through the hub: 3 hospital nodes (`lienthong serve`, SQLite), a `lienthong
hub` process over them, sequential queries from one client; then with one node killed (down) and
with one node hung (SIGSTOP: answers nothing until its timeout).

    .venv/bin/python bench/bench_hub.py --queries 300 --patients 2000

Queries: `Patient?identifier=<CCCD>` and `Patient/$everything?identifier=<CCCD>` for the person seen
at all three hospitals (each answer merges three records into one Patient). Prints p50/p99 in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fhir_server.hub import hospitals  # noqa: E402
from tests.processes import EXE, Proc, child_env, free_port, serve, wait_http  # noqa: E402

AN = f"{hospitals.CCCD}|{hospitals.AN_CCCD}"
FHIR = {"Content-Type": "application/fhir+json"}


def _filler(node: str, n: int) -> dict:
    """n other patients of the hospital (one transaction)."""
    facility = hospitals.HOSPITALS[node][0]
    entries = []
    for i in range(n):
        pid = f"{facility}-bn{i:06d}"
        entries.append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": pid,
                    "identifier": [{"system": hospitals.CCCD, "value": f"0{facility[:2]}1{i:08d}"[:12]}],
                    "name": [{"family": "TRẦN", "given": ["THỊ", f"MAI{i}"]}],
                    "birthDate": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                },
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _measure(base: str, path: str, n: int) -> tuple[float, float, int]:
    lat = []
    outcomes = 0
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            t = time.perf_counter()
            bundle = client.get(f"{base}/{path}", params={"identifier": AN}).json()
            lat.append((time.perf_counter() - t) * 1000)
            outcomes += any(e.get("search", {}).get("mode") == "outcome" for e in bundle.get("entry", []))
    q = statistics.quantiles(lat, n=100)
    return q[49], q[98], outcomes


def main() -> None:
    """Start nodes and hub, run the three situations, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--patients", type=int, default=2000, help="other patients per node")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-node timeout of the hub")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lt-bench-hub-"))
    nodes = {}
    hub = None
    try:
        for name in hospitals.HOSPITALS:
            nodes[name] = serve(f"sqlite:///{tmp / (name + '.db')}", tmp, name)
            httpx.post(
                nodes[name].base, json=hospitals.transaction(name), headers=FHIR, timeout=60
            ).raise_for_status()
            httpx.post(
                nodes[name].base, json=_filler(name, a.patients), headers=FHIR, timeout=300
            ).raise_for_status()
        config = tmp / "hub.yaml"
        config.write_text(
            yaml.safe_dump(
                {"nodes": [{"name": n, "base_url": p.base, "timeout": a.timeout} for n, p in nodes.items()]}
            )
        )
        port = free_port()
        hub = Proc(
            [EXE, "hub", "--config", str(config), "--port", str(port)],
            child_env(),
            tmp / "hub.log",
            port=port,
        )
        hub.start()
        wait_http(f"{hub.base}/metadata", hub)
        _measure(hub.base, "Patient", 20)  # warm up connections
        print(
            f"cores: {os.cpu_count()}  nodes: 3 (SQLite, {a.patients + 2} patients each)  queries: {a.queries}"
        )
        print(f"{'situation':<28} {'query':<22} {'p50 ms':>8} {'p99 ms':>8} {'partial':>8}")
        for situation in ("3 nodes up", "1 node down (killed)", "1 node hung (SIGSTOP)"):
            if situation.startswith("1 node down"):
                nodes["bv-hue"].kill9()
            if situation.startswith("1 node hung"):
                nodes["bv-bach-mai"].pause()
            for label, path in (
                ("Patient?identifier", "Patient"),
                ("$everything?identifier", "Patient/$everything"),
            ):
                n = a.queries if not situation.startswith("1 node hung") else max(10, a.queries // 10)
                p50, p99, partial = _measure(hub.base, path, n)
                print(f"{situation:<28} {label:<22} {p50:8.1f} {p99:8.1f} {partial:>5}/{n}", flush=True)
        nodes["bv-bach-mai"].resume()
    finally:
        if hub is not None:
            hub.stop()
        for p in nodes.values():
            p.stop()


if __name__ == "__main__":
    main()
