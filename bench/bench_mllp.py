"""Benchmark: HL7 v2 messages/s over MLLP with ACK after commit (ADT + ORU mix, N concurrent connections).

    .venv/bin/python bench/bench_mllp.py --db postgresql://postgres@127.0.0.1:5432/bench_mllp

Starts the listener in-process on a loopback ephemeral port; clients share the event loop (each client
sends a message, waits for its ACK, sends the next). Prints core count, dataset size, throughput and
ACK latency percentiles. The database is emptied first (it must be a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from adapters.hl7v2.mllp import MllpServer, frame
from adapters.repository import TABLES as INGEST_TABLES
from fhir_server.settings import Settings
from fhir_server.storage.sql.migrate import store_metadata
from lienthong.runtime import open_runtime

FAMILY = [
    "NGUYỄN",
    "TRẦN",
    "LÊ",
    "PHẠM",
    "HOÀNG",
    "PHAN",
    "VŨ",
    "ĐẶNG",
    "BÙI",
    "ĐỖ",
    "HỒ",
    "NGÔ",
    "DƯƠNG",
    "LÝ",
]
MIDDLE = ["VĂN", "THỊ", "HỮU", "ĐỨC", "MINH", "NGỌC", "THANH", "QUỐC", "XUÂN", "THU"]
GIVEN = [
    "AN",
    "BÌNH",
    "CƯỜNG",
    "DŨNG",
    "GIANG",
    "HÀ",
    "HẠNH",
    "KHANG",
    "LINH",
    "MAI",
    "NAM",
    "PHƯƠNG",
    "QUÂN",
    "SƠN",
    "TÂM",
    "THẢO",
    "TRUNG",
    "UYÊN",
    "VY",
    "YẾN",
]
LABS = [
    ("718-7", "Hemoglobin", "g/L", 120, 160),
    ("6690-2", "Bạch cầu", "10*9/L", 4, 10),
    ("777-3", "Tiểu cầu", "10*9/L", 150, 400),
    ("2345-7", "Glucose", "mmol/L", 3.9, 6.4),
    ("2160-0", "Creatinin", "umol/L", 62, 120),
]


def _msh(kind: str, ctrl: str) -> str:
    return f"MSH|^~\\&|HIS|BV_BACHMAI|LIENTHONG|SYT|20240115083000||{kind}|{ctrl}|P|2.5|||AL|NE|VNM|UNICODE UTF-8"


def _pid(rng: random.Random, n: int) -> str:
    name = f"{rng.choice(FAMILY)}^{rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
    cccd = f"0{rng.randint(1, 96):02d}{rng.randint(0, 1)}{rng.randint(40, 99)}{rng.randint(0, 999999):06d}"
    return (
        f"PID|1||BN{n:08d}^^^BV_BACHMAI^MR~{cccd}^^^BCA^NI||{name}||19{rng.randint(40, 99)}0{rng.randint(1, 9)}15"
        f"|{rng.choice('MF')}|||{rng.randint(1, 200)} Trần Hưng Đạo^^Hà Nội^Hà Nội^^VN^H"
        f"||09{rng.randint(10**7, 10**8 - 1)}"
    )


def make_messages(count: int, seed: int = 7) -> list[bytes]:
    """Half ADT^A01, half ORU^R01 with 5 OBX; every message a new control id, patient and visit."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        pv1 = (
            f"PV1|1|I|K01^P{i % 40}^G1||||BS{i % 30:03d}^TRẦN^THỊ BÌNH||||||||||||VN{i:09d}"
            + "|" * 25
            + "20240115080000"
        )
        if i % 2 == 0:
            segs = [_msh("ADT^A01^ADT_A01", f"B{i:09d}"), "EVN|A01|20240115083000", _pid(rng, i), pv1]
        else:
            segs = [
                _msh("ORU^R01^ORU_R01", f"B{i:09d}"),
                _pid(rng, i),
                pv1,
                f"ORC|RE|CD{i}|XN{i}",
                f"OBR|1|CD{i}|XN{i}|58410-2^Công thức máu^LN|||20240115083000" + "|" * 17 + "F",
            ]
            for j, (code, name, unit, lo, hi) in enumerate(LABS, start=1):
                value = round(rng.uniform(lo * 0.8, hi * 1.2), 1)
                flag = "H" if value > hi else "L" if value < lo else "N"
                segs.append(f"OBX|{j}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|{lo}-{hi}|{flag}|||F")
        out.append(("\r".join(segs) + "\r").encode("utf-8"))
    return out


def _reset(store) -> None:
    with store.engine.begin() as conn:
        for table in [*reversed(store_metadata().sorted_tables), *INGEST_TABLES]:
            if table.name != "schema_version":
                conn.execute(text(f'DELETE FROM "{table.name}"'))


async def _client(port: int, messages: list[bytes], latencies: list[float], codes: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in messages:
        t0 = time.perf_counter()
        writer.write(frame(raw))
        await writer.drain()
        ack = await reader.readuntil(b"\x1c\r")
        latencies.append(time.perf_counter() - t0)
        code = ack[ack.find(b"MSA|") + 4 :][:2].decode()
        codes[code] = codes.get(code, 0) + 1
    writer.close()
    await writer.wait_closed()


def _spawn_listener(db: str, workers: int, processes: int) -> tuple[subprocess.Popen, int]:
    """Start `lienthong mllp --processes N` on a free loopback port (the client then runs alone here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [
            str(exe),
            "mllp",
            "--db",
            db,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--processes",
            str(processes),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(1.0)  # let every process bind (SO_REUSEPORT) before load starts
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("lienthong mllp did not start")


async def run(
    db: str, count: int, connections: int, workers: int, hl7apy_validate: bool, processes: int = 0
) -> None:
    """Run one benchmark and print the numbers."""
    runtime = open_runtime(
        Settings.from_env().with_(database_url=db), pool_size=workers, deferred_linking=True
    )
    store = runtime.store
    _reset(store)
    messages = make_messages(count + 50)
    warm, messages = messages[:50], messages[50:]
    proc = None
    if processes:
        server = None
        proc, port = _spawn_listener(db, workers, processes)
    else:
        server = MllpServer(
            store,
            port=0,
            workers=workers,
            options={"hl7apy_validate": hl7apy_validate},
            linker=runtime.linker,
        )
        port = await server.start()
    await _client(port, warm, [], {})
    latencies: list[float] = []
    codes: dict = {}
    chunks = [messages[i::connections] for i in range(connections)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, c, latencies, codes) for c in chunks))
    elapsed = time.perf_counter() - t0
    if server is not None:
        await server.close()
    else:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"cores={os.cpu_count()} db={db.split('://')[0]} messages={count} (ADT^A01 + ORU^R01 x5 OBX, 50/50) "
        f"connections={connections} workers={workers} hl7apy_validate={hl7apy_validate} "
        f"listener={'in-process' if server is not None else f'{processes} process(es)'}"
    )
    print(f"acks={codes} elapsed={elapsed:.2f}s throughput={count / elapsed:.0f} msg/s")
    print(
        f"latency ms: p50={q[49] * 1000:.1f} p90={q[89] * 1000:.1f} p99={q[98] * 1000:.1f} "
        f"max={latencies[-1] * 1000:.1f}"
    )
    store.close()


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("LIENTHONG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/bench_mllp"),
    )
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2, help="concurrent group-commit batches")
    ap.add_argument("--hl7apy-validate", action="store_true")
    ap.add_argument(
        "--processes",
        type=int,
        default=0,
        help="run `lienthong mllp --processes N` as a separate program (0 = in this process)",
    )
    args = ap.parse_args()
    if args.db.startswith("postgres"):
        _ensure_pg_db(args.db)
    asyncio.run(
        run(args.db, args.messages, args.connections, args.workers, args.hl7apy_validate, args.processes)
    )


def _ensure_pg_db(url: str) -> None:
    """Create the scratch benchmark database when missing."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
