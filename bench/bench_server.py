"""FHIR server benchmark: transaction ingest throughput, read/vread/history latency, concurrent reads.

Points at any FHIR R4 base URL (--base) so the same run can compare Lienthong with another server,
or starts Lienthong itself (`lienthong serve`) on a loopback port over --db.

    python bench/bench_server.py --db postgresql://postgres@127.0.0.1:5432/bench --patients 5000
    python bench/bench_server.py --base http://127.0.0.1:8081/fhir      # another server
    python bench/bench_server.py --db postgresql://…/bench_read --preloaded   # data already loaded

Reads by id at 1, 4 and 8 wrk connections (req/s, p50, p99) with the CPU split while they ran: server
processes with their workers, the PostgreSQL backends of the bench database, the load generator
(CPU-seconds per second; 2.0 = both cores). Set LIENTHONG_DIRECT_ROUTE=false for the A/B without
the direct route.

Identifier, patient-scoped and name (`name=<family> <given>&_count=20`) searches are timed twice:
one httpx client (sequential p50/p99, which include ~0.5 ms of the Python client) and wrk at 1
connection cycling over the same paths for --search-seconds (`*_wrk_1c`: req/s, p50/p99 and
server/PostgreSQL CPU per search — the server's figure). LIENTHONG_READ_AUTOCOMMIT=false and
LIENTHONG_SEARCH_TEMPLATES=false give the A/B sides.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.vn_people import VietnamesePeople  # noqa: E402

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
ICD10 = [
    ("I10", "Tăng huyết áp vô căn"),
    ("E11.9", "Đái tháo đường type 2"),
    ("J06.9", "Nhiễm trùng hô hấp trên cấp"),
    ("K29.7", "Viêm dạ dày"),
    ("J18.9", "Viêm phổi"),
    ("N39.0", "Nhiễm khuẩn tiết niệu"),
]
LABS = [
    ("2345-7", "Glucose", "mmol/L", 3.9, 11.0),
    ("2160-0", "Creatinine", "umol/L", 50, 140),
    ("718-7", "Hemoglobin", "g/L", 100, 170),
    ("2093-3", "Cholesterol", "mmol/L", 3.0, 7.5),
    ("6690-2", "Leukocytes", "10*9/L", 3.5, 14.0),
]


def patient_bundle_entries(rng: random.Random, people: VietnamesePeople, hospital: str) -> list[dict]:
    """One patient with 2 encounters, 2 conditions and 5 lab observations (10 resources)."""
    person = people.person(rng)
    purl = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
    entries = [{"fullUrl": purl, "resource": person, "request": {"method": "POST", "url": "Patient"}}]
    for _ in range(2):
        eurl = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        code, display = rng.choice(ICD10)
        entries.append(
            {
                "fullUrl": eurl,
                "request": {"method": "POST", "url": "Encounter"},
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": purl},
                    "period": {"start": f"{day}T08:00:00+07:00", "end": f"{day}T10:00:00+07:00"},
                    "serviceProvider": {
                        "identifier": {
                            "system": "http://fhir.hl7.org.vn/core/sid/ma-cskcb",
                            "value": hospital,
                        }
                    },
                },
            }
        )
        entries.append(
            {
                "request": {"method": "POST", "url": "Condition"},
                "resource": {
                    "resourceType": "Condition",
                    "subject": {"reference": purl},
                    "encounter": {"reference": eurl},
                    "code": {
                        "coding": [
                            {"system": "http://hl7.org/fhir/sid/icd-10", "code": code, "display": display}
                        ]
                    },
                    "recordedDate": day,
                },
            }
        )
    for code, display, unit, lo, hi in rng.sample(LABS, 5):
        entries.append(
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": purl},
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                    "effectiveDateTime": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T07:30:00+07:00",
                    "valueQuantity": {
                        "value": round(rng.uniform(lo, hi), 1),
                        "unit": unit,
                        "system": "http://unitsofmeasure.org",
                        "code": unit,
                    },
                },
            }
        )
    return entries


def make_bundles(n_patients: int, seed: int, per_bundle: int = 100) -> list[dict]:
    """Transaction Bundles of `per_bundle` entries (10 patients' worth each), deterministic by seed."""
    rng = random.Random(seed)
    people = VietnamesePeople()
    hospitals = ["79001", "79002", "01001", "48001", "31001"]
    entries: list[dict] = []
    for _ in range(n_patients):
        entries.extend(patient_bundle_entries(rng, people, rng.choice(hospitals)))
    return [
        {"resourceType": "Bundle", "type": "transaction", "entry": entries[i : i + per_bundle]}
        for i in range(0, len(entries), per_bundle)
    ]


def pct(values: list[float], p: float) -> float:
    """Percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def ingest(base: str, bundles: list[dict], clients: int) -> tuple[float, list[str]]:
    """Post all bundles from `clients` threads; returns (seconds, created locations)."""
    queue = list(enumerate(bundles))
    lock = threading.Lock()
    locations: list[str] = []
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    _, bundle = queue.pop()
                r = c.post("", content=json.dumps(bundle))
                if r.status_code != 200:
                    with lock:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
                locs = [e["response"]["location"] for e in r.json()["entry"]]
                with lock:
                    locations.extend(locs)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} bundles failed, first: {errors[0]}")
    return elapsed, locations


def timed_gets(base: str, paths: list[str]) -> list[float]:
    """Sequential GETs on one keep-alive connection; per-request seconds."""
    times = []
    with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as c:
        for path in paths:
            t0 = time.perf_counter()
            r = c.get(path)
            times.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise SystemExit(f"GET {path} -> {r.status_code}")
    return times


def concurrent_reads(base: str, paths: list[str], clients: int, seconds: float) -> float:
    """Reads per second with `clients` threads hammering for `seconds` (bounded)."""
    stop = time.perf_counter() + seconds
    counts = [0] * clients

    def worker(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as c:
            while time.perf_counter() < stop:
                c.get(rng.choice(paths))
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def wrk_reads(base: str, paths: list[str], clients: int, seconds: float) -> dict | None:
    """Concurrent GETs (reads, or searches cycled the same way) with wrk (C load generator) when
    installed: the Python client is itself the bottleneck past a few hundred requests/s on 2 cores.
    Returns rps and latency percentiles."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    parts = urlsplit(base)
    tmp = Path(tempfile.mkdtemp(prefix="lt-wrk-"))
    (tmp / "paths.txt").write_text("\n".join(f"{parts.path}/{p}" for p in paths) + "\n")
    (tmp / "reads.lua").write_text(
        f'local paths = {{}}\nfor line in io.lines("{tmp / "paths.txt"}") do paths[#paths + 1] = line end\n'
        "local i = 0\nrequest = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i], {["Accept"] = "application/fhir+json"})\nend\n'
    )
    out = subprocess.run(
        [
            wrk,
            f"-t{min(2, clients)}",
            f"-c{clients}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            str(tmp / "reads.lua"),
            f"{parts.scheme}://{parts.netloc}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    result = {"tool": "wrk"}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            value = words[1]
            ms = (
                float(value[:-2])
                if value.endswith("ms")
                else float(value[:-2]) / 1000
                if value.endswith("us")
                else float(value[:-1]) * 1000
            )
            result[f"p{words[0][:-1]}_ms"] = round(ms, 2)
        elif "Non-2xx" in line:
            result["non_2xx"] = int(words[-1])
    return result


def _children(pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes (and its reaped children) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return out


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings (a process started in between counts from zero; one that
    ended in between is lost)."""
    return sum(after[p] - before.get(p, 0.0) for p in after)


def _pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes together, in MB."""
    kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kb += int(line.split()[1])
        except OSError:
            continue
    return round(kb / 1024, 1)


def _pg_backends(db: str | None) -> list[int]:
    """PIDs of the PostgreSQL backends connected to the bench database (none when not PostgreSQL)."""
    if not db or not db.startswith("postgresql"):
        return []
    import psycopg

    name = urlsplit(db).path.lstrip("/")
    admin = db.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return [r[0] for r in rows]


def preloaded_targets(base: str, n: int) -> dict[str, list[str]]:
    """Read, identifier-search and patient-scoped search paths from data already on the server."""
    out: dict[str, list[str]] = {"reads": [], "identifiers": [], "patient_obs": [], "names": []}
    with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as c:
        for rtype in ("Patient", "Observation", "Encounter", "Condition"):
            r = c.get(rtype, params={"_count": str(max(50, n // 4))})
            for e in r.json().get("entry", []):
                res = e["resource"]
                out["reads"].append(f"{rtype}/{res['id']}")
                if rtype == "Patient":
                    for ident in res.get("identifier", [])[:1]:
                        out["identifiers"].append(f"Patient?identifier={ident['system']}|{ident['value']}")
                    out["patient_obs"].append(f"Observation?subject=Patient/{res['id']}&code=2345-7")
                    for name in res.get("name", [])[:1]:  # "nguyen van"-like: family + first given name
                        words = [name.get("family", ""), *name.get("given", [])[:1]]
                        out["names"].append(
                            f"Patient?name={quote(' '.join(w for w in words if w))}&_count=20"
                        )
    return out


def wrk_at(base: str, paths: list[str], clients: list[int], seconds: float) -> dict:
    """wrk read figures at each client count (empty when wrk is missing)."""
    out = {}
    for n in clients:
        got = wrk_reads(base, paths, n, seconds)
        if got is None:
            return {}
        out[n] = got
    return out


def start_lienthong(db: str, workers: int) -> tuple[subprocess.Popen, str]:
    """Start `lienthong serve` on a free loopback port; returns (process, base URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("lienthong")
    errors = Path(tempfile.mkdtemp(prefix="lt-serve-")) / "stderr.txt"
    with errors.open("wb") as err:  # a file, not a pipe: workers outlive a killed master and keep it open
        proc = subprocess.Popen(
            [str(exe), "serve", "--db", db, "--port", str(port), "--workers", str(workers)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.time() + 300  # a busy shared machine can take minutes to start two workers
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(proc.pid, 15)
    raise SystemExit("lienthong serve did not start: " + errors.read_text(errors="replace")[-2000:])


def _vacuum_analyze(db: str) -> None:
    """VACUUM ANALYZE the bench database: this machine runs PostgreSQL with autovacuum off, and plans on
    never-analyzed tables go wrong (production servers have autovacuum on)."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _split(server: list[int], db: str | None, seconds: float, run) -> tuple[object, dict]:
    """Run `run()` and return its result with the CPU seconds per second of the server processes,
    the database backends and the load generator (a child process of this one) while it ran."""
    import resource

    backends = _pg_backends(db)
    before = (_cpu_seconds(server), _cpu_seconds(backends), resource.getrusage(resource.RUSAGE_CHILDREN))
    t0 = time.perf_counter()
    result = run()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen = (after.ru_utime + after.ru_stime) - (before[2].ru_utime + before[2].ru_stime)
    cpu = {
        "server_cpu": round(_used(before[0], _cpu_seconds(server)) / wall, 2),
        "postgres_cpu": round(
            _used(before[1], _cpu_seconds(sorted(set(backends) | set(_pg_backends(db))))) / wall, 2
        ),
        "loadgen_cpu": round(gen / wall, 2),
    }
    rps = getattr(result, "get", lambda _k: None)("rps")
    if rps:  # CPU per request: what a busy shared machine changes least
        cpu["server_cpu_ms_per_req"] = round(cpu["server_cpu"] * 1000 / rps, 3)
        cpu["postgres_cpu_ms_per_req"] = round(cpu["postgres_cpu"] * 1000 / rps, 3)
    return result, cpu


def main() -> None:
    """Run the benchmark and print a summary (also written as JSON under bench/results/)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="FHIR base URL of a running server (skips starting Lienthong)")
    ap.add_argument("--db", help="database URL for the Lienthong it starts (default: temp SQLite file)")
    ap.add_argument("--patients", type=int, default=2000, help="patients to generate (10 resources each)")
    ap.add_argument("--preloaded", action="store_true", help="no ingest: read what the server already holds")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers")
    ap.add_argument("--clients", type=int, default=4, help="concurrent ingest clients")
    ap.add_argument("--reads", type=int, default=2000, help="sequential reads for latency percentiles")
    ap.add_argument("--searches", type=int, default=500, help="sequential searches of each kind")
    ap.add_argument("--read-clients", default="1,4,8", help="wrk connection counts for concurrent reads")
    ap.add_argument("--read-seconds", type=float, default=10.0)
    ap.add_argument(
        "--search-seconds",
        type=float,
        default=5.0,
        help="seconds of wrk at 1 connection per search kind (the server's figure, not httpx's; 0: skip)",
    )
    ap.add_argument("--everything", help="a Patient id whose $everything is timed (e.g. bench_everything's)")
    ap.add_argument("--server-pid", type=int, help="with --base: the server's pid, for its CPU and memory")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args()

    proc = None
    base = args.base
    db = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='lt-bench-')}/bench.db"
    if not base:
        proc, base = start_lienthong(db, args.workers)
    server_pid = proc.pid if proc else args.server_pid
    result: dict = {
        "server": base if args.base else f"lienthong ({db.split('@')[-1]}, {args.workers} workers)",
        "direct_route": os.environ.get("LIENTHONG_DIRECT_ROUTE", "true"),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        if server_pid:
            time.sleep(3)  # every worker up (the first one answering /metadata is not all of them)
            result["server_pss_idle_mb"] = _pss_mb(_children(server_pid))
            result["server_pss_idle_per_process_mb"] = [_pss_mb([p]) for p in _children(server_pid)]
        if args.preloaded:
            found = preloaded_targets(base, args.reads)
            targets = found["reads"]
        else:
            bundles = make_bundles(args.patients, args.seed)
            n_resources = sum(len(b["entry"]) for b in bundles)
            secs, locations = ingest(base, bundles, args.clients)
            result.update(
                {
                    "patients": args.patients,
                    "resources": n_resources,
                    "ingest_clients": args.clients,
                    "ingest_seconds": round(secs, 2),
                    "ingest_resources_per_s": round(n_resources / secs),
                }
            )
            rng = random.Random(args.seed)
            targets = [
                loc.split("/_history")[0] for loc in rng.sample(locations, min(args.reads, len(locations)))
            ]
            found = {"identifiers": [], "patient_obs": [], "names": []}
            found.update({k: v for k, v in preloaded_targets(base, args.searches).items() if k != "reads"})
        if not args.base and db.startswith("postgresql"):
            _vacuum_analyze(db)
            result["vacuum_analyze"] = True
        server = _children(server_pid) if server_pid else []
        timed_gets(base, targets[:200])  # warm-up
        read = timed_gets(base, targets)
        vread = timed_gets(base, [f"{t}/_history/1" for t in targets[: args.reads // 2]])
        result.update(
            {
                "read_p50_ms": round(pct(read, 50), 2),
                "read_p99_ms": round(pct(read, 99), 2),
                "vread_p50_ms": round(pct(vread, 50), 2),
                "vread_p99_ms": round(pct(vread, 99), 2),
            }
        )
        for key, paths in (
            ("identifier_search", found["identifiers"]),
            ("patient_obs_search", found["patient_obs"]),
            ("name_search", found.get("names", [])),
        ):
            if paths:
                times = timed_gets(base, [p.replace("|", "%7C") for p in paths[: args.searches]])
                result[f"{key}_p50_ms"] = round(pct(times, 50), 2)
                result[f"{key}_p99_ms"] = round(pct(times, 99), 2)
                if args.search_seconds > 0:  # wrk cycling over the same paths, one connection
                    got, cpu = _split(
                        server,
                        db,
                        args.search_seconds,
                        lambda paths=paths: wrk_reads(
                            base, [p.replace("|", "%7C") for p in paths], 1, args.search_seconds
                        ),
                    )
                    if got is not None:
                        result[f"{key}_wrk_1c"] = {**got, **cpu}
        if args.everything:
            times = timed_gets(base, [f"Patient/{args.everything}/$everything"] * 100)
            result["everything_p50_ms"] = round(pct(times, 50), 2)
            result["everything_p99_ms"] = round(pct(times, 99), 2)
        for n in [int(x) for x in args.read_clients.split(",") if x]:
            got, cpu = _split(
                server, db, args.read_seconds, lambda n=n: wrk_reads(base, targets, n, args.read_seconds)
            )
            if got is None:  # no wrk: Python threads (client-bound past a few hundred requests/s)
                got, cpu = _split(
                    server,
                    db,
                    args.read_seconds,
                    lambda n=n: {
                        "rps": concurrent_reads(base, targets, n, args.read_seconds),
                        "tool": "httpx",
                    },
                )
            result[f"reads_{n}c"] = {**got, **cpu}
        if server:
            result["server_pss_mb"] = _pss_mb(_children(server_pid))
            result["server_pss_per_process_mb"] = [_pss_mb([p]) for p in _children(server_pid)]
        result["load_average_at_end"] = os.getloadavg()[0]
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    for key, value in result.items():
        print(f"{key:26} {value}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"server-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
