"""Requests lost across graceful reloads of `lienthong serve --workers N` (SIGHUP, lienthong/prefork.py).

Starts a real server on loopback over a fresh SQLite file, keeps --clients threads requesting
/fhir/metadata (a new connection each time, so every accept races the reload), sends --reloads SIGHUPs,
each once the previous generation is fully replaced, and prints answered / failed requests. A failed
request is any non-200 or transport error; the target is zero.

    python bench/bench_reload.py --reloads 5 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

EXE = str(Path(sys.executable).with_name("lienthong"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(pid: int) -> set[str]:
    return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def main() -> None:
    """Run the reloads and print what the clients saw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/reload.db"
        cmd = [EXE, "serve", "--db", db, "--port", str(port), "--workers", str(args.workers)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        url = f"http://127.0.0.1:{port}/fhir/metadata"
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        seen: Counter[str] = Counter()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    r = httpx.get(url, timeout=30, headers={"Connection": "close"})
                    seen["ok" if r.status_code == 200 else f"HTTP {r.status_code}"] += 1
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] += 1

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        start = time.perf_counter()
        for _ in range(args.reloads):
            old = _workers(proc.pid)
            proc.send_signal(signal.SIGHUP)
            while not ((now := _workers(proc.pid)) and len(now) == args.workers and not now & old):
                time.sleep(0.1)
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    failed = sum(n for k, n in seen.items() if k != "ok")
    print(
        f"{args.reloads} reloads in {time.perf_counter() - start:.1f}s, {args.clients} clients: "
        f"{seen['ok']} answered, {failed} failed {dict(seen)}; master exit {proc.returncode}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
