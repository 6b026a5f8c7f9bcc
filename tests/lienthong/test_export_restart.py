"""A Bulk Data export survives the death of the server process that runs it: `lienthong serve` is
killed (SIGKILL) while the export is running, a new process on the same PostgreSQL database takes the
job over when its heartbeat goes stale, and the client gets a complete, duplicate-free export."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from fhir_server.storage import open_store
from tests.processes import drop_pg_database, new_pg_database, serve

PG_ADMIN = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FHIR = {"Content-Type": "application/fhir+json"}
PATIENTS = 3000


@pytest.fixture
def database(pg_session_url) -> Iterator[str]:
    """An empty PostgreSQL database of its own (the servers are separate processes)."""
    if pg_session_url is None:
        pytest.skip("PostgreSQL not reachable")
    db = new_pg_database(PG_ADMIN, "lienthong_export")
    try:
        yield db
    finally:
        drop_pg_database(db)


def _load(base: str) -> None:
    for start in range(0, PATIENTS, 500):
        entries = [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": f"bn-{i:05d}",
                    "name": [
                        {"text": f"Phạm Thị Thu Hà {i}", "family": "Phạm", "given": ["Thị", "Thu", "Hà"]}
                    ],
                    "gender": "female",
                },
                "request": {"method": "PUT", "url": f"Patient/bn-{i:05d}"},
            }
            for i in range(start, min(start + 500, PATIENTS))
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        assert httpx.post(base, json=bundle, headers=FHIR, timeout=120).status_code == 200


def test_an_export_interrupted_by_a_killed_server_completes_after_restart(database, tmp_path):
    env = {
        "LIENTHONG_EXPORT_DIR": str(tmp_path / "exports"),
        "LIENTHONG_EXPORT_STALE_SECONDS": "1",
        "LIENTHONG_EXPORT_FILE_MAX_BYTES": "200000",
        "LIENTHONG_EXPORT_RETRY_AFTER": "1",
    }
    first = serve(database, tmp_path, "first", **env)
    try:
        _load(first.base)
        store = open_store(database)
        # Hold the resource table: the worker claims the job, then blocks on its first read, so the
        # process is killed while its job is `running` — the state a crash mid-export leaves behind.
        blocker = psycopg.connect(database)
        blocker.execute("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE")
        kick = httpx.get(f"{first.base}/$export", headers={"Prefer": "respond-async"})
        assert kick.status_code == 202
        status_path = kick.headers["content-location"].split("/fhir", 1)[1]
        job_id = status_path.rsplit("/", 1)[-1]
        for _ in range(6000):
            before = store.exports.get(job_id)
            if before is not None and before.status == "running":
                break
            time.sleep(0.01)
        assert before is not None and before.status == "running" and before.attempts == 1
        first.kill9()
        blocker.rollback()
        blocker.close()
    finally:
        first.stop()
    second = serve(database, tmp_path, "second", **env)
    try:
        time.sleep(1.1)  # the dead worker's heartbeat must be older than the stale limit
        for _ in range(600):
            r = httpx.get(second.base + status_path, timeout=30)
            if r.status_code != 202:
                break
            time.sleep(int(r.headers["retry-after"]))
        assert r.status_code == 200, r.text
        manifest = r.json()
        ids: list[str] = []
        client = httpx.Client()
        for entry in manifest["output"]:
            assert entry["type"] == "Patient"
            body = client.get(entry["url"], timeout=30).content
            ids += [orjson.loads(line)["id"] for line in body.splitlines()]
        assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS
        assert sum(e["count"] for e in manifest["output"]) == PATIENTS
        job_dir = Path(env["LIENTHONG_EXPORT_DIR"]) / status_path.rsplit("/", 1)[-1]
        on_disk = sorted(str(p.relative_to(job_dir)) for p in job_dir.rglob("*.ndjson"))
        assert on_disk == sorted(
            e["url"].split(f"{job_id}/", 1)[1] for e in manifest["output"]
        )  # no leftovers
        after = store.exports.get(job_id)
        assert after is not None and after.status == "done"
        assert after.attempts == 2 and after.worker != before.worker
    finally:
        second.stop()
        store.close()
