"""Memory and time of the largest request the bounds accept (issue 12): a transaction of
LIENTHONG_MAX_BUNDLE_ENTRIES entries just under LIENTHONG_MAX_BODY_BYTES, posted to a real
`lienthong serve`; peak RSS (VmHWM) and RSS after, from /proc of the server process.

    python bench/bench_bounds.py --db postgresql://postgres@127.0.0.1:5432/bench_bounds --entries 10000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import EXE, free_port  # noqa: E402


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _bundle(entries: int, pad: int) -> bytes:
    items = []
    for i in range(entries):
        full = f"urn:uuid:{uuid.uuid4()}"
        items.append(
            {
                "fullUrl": full,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": f"0790{i:08d}"}
                    ],
                    "name": [{"family": "NGUYỄN", "given": ["VĂN", "AN"], "text": "NGUYỄN VĂN AN"}],
                    "gender": "male",
                    "birthDate": "1990-05-15",
                    "address": [
                        {"text": ("Số 12 đường Lê Lợi, Phường Bến Nghé, TP Hồ Chí Minh " * pad).strip()}
                    ],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": items})


def main() -> None:
    """Serve, post the largest accepted transaction, print peak and after RSS."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite:////tmp/lienthong-bounds.db")
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--max-body", type=int, default=20 * 1024 * 1024)
    args = ap.parse_args()
    pad = 1
    body = _bundle(args.entries, pad)
    while len(_bundle(args.entries, pad + 1)) < args.max_body:  # fill the body up to the size bound
        pad += 1
        body = _bundle(args.entries, pad)
    port = free_port()
    env = {**os.environ, "LIENTHONG_DATABASE_URL": args.db, "LIENTHONG_PORT": str(port)}
    server = subprocess.Popen([EXE, "serve"], env=env)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/metadata", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        pid = server.pid
        before = _kib(pid, "VmRSS")
        start = time.perf_counter()
        r = httpx.post(base, content=body, headers={"Content-Type": "application/fhir+json"}, timeout=600)
        elapsed = time.perf_counter() - start
        time.sleep(2)
        peak, after = _kib(pid, "VmHWM"), _kib(pid, "VmRSS")
        too_many = httpx.post(
            base,
            content=orjson.dumps(
                {"resourceType": "Bundle", "type": "batch", "entry": [{}] * (args.entries + 1)}
            ),
            headers={"Content-Type": "application/fhir+json"},
            timeout=60,
        )
        print(f"cores={os.cpu_count()} db={args.db.split('@')[-1]}")
        print(
            f"transaction: {args.entries} entries, {len(body) / 1e6:.1f} MB -> {r.status_code} in {elapsed:.1f} s"
        )
        print(
            f"server RSS: before {before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB, after {after / 1024:.0f} MiB"
        )
        print(f"{args.entries + 1} entries -> {too_many.status_code}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
