"""The export worker starts with the server: a job left queued or running by an earlier process is
finished by the next `lienthong serve` without any request to the export endpoints (checked in the
database and on disk, never by polling the status URL)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from fhir_server.interactions.bundles import transaction
from fhir_server.storage import open_store
from tests.processes import drop_pg_database, new_pg_database, serve

PG_ADMIN = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PATIENTS = 1200
ENV = {"LIENTHONG_EXPORT_STALE_SECONDS": "1", "LIENTHONG_EXPORT_FILE_MAX_BYTES": "100000"}


@pytest.fixture
def database(pg_session_url) -> Iterator[str]:
    """An empty PostgreSQL database of its own, with PATIENTS patients (the servers are separate processes)."""
    if pg_session_url is None:
        pytest.skip("PostgreSQL not reachable")
    db = new_pg_database(PG_ADMIN, "lienthong_export_boot")
    store = open_store(db)
    entries = [
        {
            "resource": {
                "resourceType": "Patient",
                "id": f"bn-{i:05d}",
                "name": [{"text": f"Đặng Thị Mai {i}", "family": "Đặng", "given": ["Thị", "Mai"]}],
                "gender": "female",
            },
            "request": {"method": "PUT", "url": f"Patient/bn-{i:05d}"},
        }
        for i in range(PATIENTS)
    ]
    transaction(store, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    store.close()
    try:
        yield db
    finally:
        drop_pg_database(db)


def _wait_done(store, job_id: str, seconds: float = 120):
    """The job as the database shows it once it left queued/running (or after `seconds`)."""
    deadline = time.time() + seconds
    job = store.exports.get(job_id)
    while job is not None and job.status in ("queued", "running") and time.time() < deadline:
        time.sleep(0.2)
        job = store.exports.get(job_id)
    return job


def _exported_ids(export_dir: Path, job_id: str, manifest: dict) -> list[str]:
    ids: list[str] = []
    for entry in manifest["output"]:
        body = (export_dir / job_id / entry["file"]).read_bytes()
        ids += [orjson.loads(line)["id"] for line in body.splitlines()]
    return ids


def test_a_job_queued_while_no_server_ran_is_exported_when_one_starts(database, tmp_path):
    store = open_store(database)
    job_id = str(uuid.uuid4())
    params = {"types": ["Patient"], "since": None, "filters": {}, "patients": None}
    store.exports.create(job_id, "system", params, "http://127.0.0.1/fhir/$export?_type=Patient", None)
    export_dir = tmp_path / "exports"
    server = serve(database, tmp_path, "boot", LIENTHONG_EXPORT_DIR=str(export_dir), **ENV)
    try:
        job = _wait_done(store, job_id)
        assert job is not None and job.status == "done", job
        ids = _exported_ids(export_dir, job_id, job.manifest)
        assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS
        assert len(job.manifest["output"]) > 1  # split at the size limit
    finally:
        server.stop()
        store.close()


def test_a_job_running_when_its_server_died_is_taken_over_by_the_next_one_unasked(database, tmp_path):
    export_dir = tmp_path / "exports"
    env = {"LIENTHONG_EXPORT_DIR": str(export_dir), **ENV}
    store = open_store(database)
    first = serve(database, tmp_path, "first", **env)
    try:
        # Hold the resource table: the worker claims the job, then blocks on its first read, so the
        # process dies while its job is `running` — the state a crash mid-export leaves behind.
        blocker = psycopg.connect(database)
        blocker.execute("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE")
        kick = httpx.get(f"{first.base}/$export?_type=Patient", headers={"Prefer": "respond-async"})
        assert kick.status_code == 202
        job_id = kick.headers["content-location"].rsplit("/", 1)[-1]
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
        job = _wait_done(store, job_id)  # no request: the second server's boot worker waits out the heartbeat
        assert job is not None and job.status == "done", job
        assert job.attempts == 2 and job.worker != before.worker
        ids = _exported_ids(export_dir, job_id, job.manifest)
        assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS
    finally:
        second.stop()
        store.close()
