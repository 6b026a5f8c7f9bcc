"""Bulk Data `$export` throughput and memory: a system-level export of N resources from PostgreSQL.

Generates N resources (Patient 20 %, Encounter 20 %, Observation 50 %, Condition 10 %, Vietnamese
names, ~400-600 bytes each) straight into the `resource` table of a fresh database with one bulk SQL
statement (the export reads only that table), starts `lienthong serve` on it, kicks off `$export`,
polls honouring Retry-After and reports resources/s, MB/s and the server process's peak RSS
(VmHWM) before and after the export.

    python bench/bench_export.py --admin postgresql://postgres@127.0.0.1:5432/test --resources 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

EXE = str(Path(sys.executable).with_name("lienthong"))

GENERATE = """
INSERT INTO resource (res_type, res_id, version, last_updated, deleted, content_hash, content)
SELECT t, t || '-' || i, 1, %(at)s::bigint, false, md5(i::text) || md5(t),
  convert_to(CASE t
    WHEN 'Patient' THEN json_build_object('resourceType', 'Patient', 'id', t || '-' || i,
      'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-12-01T00:00:00Z'),
      'identifier', json_build_array(json_build_object('system', 'http://fhir.hl7.org.vn/core/sid/bhyt',
        'value', 'DN479' || lpad(i::text, 10, '0'))),
      'name', json_build_array(json_build_object('text', 'Nguyễn Thị Thu Hà ' || i, 'family', 'Nguyễn',
        'given', json_build_array('Thị', 'Thu', 'Hà'))),
      'gender', 'female', 'birthDate', '1984-03-17',
      'address', json_build_array(json_build_object('text', 'Phường Bến Nghé, Quận 1, Thành phố Hồ Chí Minh',
        'city', 'Thành phố Hồ Chí Minh', 'country', 'VN')))
    WHEN 'Encounter' THEN json_build_object('resourceType', 'Encounter', 'id', t || '-' || i,
      'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-12-01T00:00:00Z'),
      'status', 'finished', 'class', json_build_object('system',
        'http://terminology.hl7.org/CodeSystem/v3-ActCode', 'code', 'AMB'),
      'subject', json_build_object('reference', 'Patient/Patient-' || (i / 10 * 10)),
      'period', json_build_object('start', '2026-03-02T08:15:00+07:00', 'end', '2026-03-02T10:40:00+07:00'),
      'serviceProvider', json_build_object('reference', 'Organization/79001'))
    WHEN 'Condition' THEN json_build_object('resourceType', 'Condition', 'id', t || '-' || i,
      'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-12-01T00:00:00Z'),
      'code', json_build_object('coding', json_build_array(json_build_object('system',
        'http://hl7.org/fhir/sid/icd-10', 'code', 'E11', 'display', 'Bệnh đái tháo đường không phụ thuộc insulin'))),
      'subject', json_build_object('reference', 'Patient/Patient-' || (i / 10 * 10)))
    ELSE json_build_object('resourceType', 'Observation', 'id', t || '-' || i,
      'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-12-01T00:00:00Z'),
      'status', 'final', 'code', json_build_object('coding', json_build_array(json_build_object(
        'system', 'http://loinc.org', 'code', '2339-0', 'display', 'Glucose [Mass/volume] in Blood'))),
      'subject', json_build_object('reference', 'Patient/Patient-' || (i / 10 * 10)),
      'effectiveDateTime', '2026-03-02T08:30:00+07:00',
      'valueQuantity', json_build_object('value', 5 + (i %% 40) / 10.0, 'unit', 'mmol/L',
        'system', 'http://unitsofmeasure.org', 'code', 'mmol/L'))
  END::text, 'UTF8')
FROM (
  SELECT i, CASE WHEN i %% 10 < 2 THEN 'Patient' WHEN i %% 10 < 4 THEN 'Encounter'
                 WHEN i %% 10 < 5 THEN 'Condition' ELSE 'Observation' END AS t
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
) s
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    """Generate, export, report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--resources", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = ap.parse_args()
    name = f"lienthong_bench_export_{uuid.uuid4().hex[:6]}"
    base_url, _, _ = args.admin.rpartition("/")
    db = f"{base_url}/{name}"
    with psycopg.connect(args.admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix="lienthong-export-bench-"))
    proc = None
    try:
        from fhir_server.storage import open_store

        open_store(db).close()  # the schema
        t0 = time.perf_counter()
        at = int(time.time() * 1_000_000) - 60_000_000
        with psycopg.connect(db, autocommit=True) as conn:
            step = 200_000
            for lo in range(1, args.resources + 1, step):
                conn.execute(GENERATE, {"at": at, "lo": lo, "hi": min(lo + step - 1, args.resources)})
            conn.execute("VACUUM ANALYZE resource")
            size = conn.execute("SELECT sum(length(content)) FROM resource").fetchone()[0]
        print(
            f"cores={os.cpu_count()} resources={args.resources} stored={size / 1e6:.0f} MB "
            f"generated in {time.perf_counter() - t0:.0f}s"
        )

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
        env.update(LIENTHONG_EXPORT_DIR=str(workdir / "exports"), LIENTHONG_EXPORT_RETRY_AFTER="1")
        log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [EXE, "serve", "--db", db, "--port", str(port)], env=env, stdout=log, stderr=log
        )
        fhir = f"http://127.0.0.1:{port}/fhir"
        for _ in range(600):
            try:
                httpx.get(f"{fhir}/metadata", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        rss_before, hwm_before = _kib(proc.pid, "VmRSS"), _kib(proc.pid, "VmHWM")
        t0 = time.perf_counter()
        kick = httpx.get(f"{fhir}/$export", headers={"Prefer": "respond-async"}, timeout=60)
        assert kick.status_code == 202, kick.text
        status = kick.headers["content-location"]
        while True:
            r = httpx.get(status, timeout=60)
            if r.status_code != 202:
                break
            time.sleep(int(r.headers.get("retry-after", "1")))
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        manifest = r.json()
        count = sum(e["count"] for e in manifest["output"])
        job_dir = workdir / "exports" / status.rsplit("/", 1)[-1]
        written = sum(p.stat().st_size for p in job_dir.rglob("*.ndjson"))
        hwm_after = _kib(proc.pid, "VmHWM")
        print(
            f"exported {count} resources in {len(manifest['output'])} files, {written / 1e6:.0f} MB, "
            f"{elapsed:.1f}s (poll granularity 1 s)"
        )
        print(f"throughput: {count / elapsed:,.0f} resources/s, {written / 1e6 / elapsed:.1f} MB/s")
        print(
            f"server RSS before export {rss_before / 1024:.0f} MiB; peak RSS (VmHWM) before "
            f"{hwm_before / 1024:.0f} MiB, after {hwm_after / 1024:.0f} MiB"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            with psycopg.connect(args.admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
