"""Bulk Data `$export` over HTTP on SQLite and PostgreSQL, driven as a Bulk Data client does: kick-off
with Prefer: respond-async, poll the status URL honouring Retry-After, download the NDJSON files,
delete. System, Patient and Group level; _type, _since, _typeFilter, _outputFormat; file splitting,
expiry, cancellation, a job left by a dead worker, exclusive claims, scopes."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest
from jose import jwt

from fhir_server.settings import Settings
from fhir_server.storage import open_store
from fhir_server.timeutil import instant, now_us

pytestmark = pytest.mark.asyncio

LOINC = "http://loinc.org"
SECRET = "khoa-bi-mat-kiem-thu-xuat-du-lieu"


def _patient(pid: str, name: str, gender: str) -> dict:
    family, *given = name.split()
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"text": name, "family": family, "given": given}],
        "gender": gender,
        "managingOrganization": {"reference": "Organization/org-cho-ray"},
    }


def _obs(oid: str, pid: str, code: str, value: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value, "unit": "mmol/L"},
    }


RESOURCES = [
    {"resourceType": "Organization", "id": "org-cho-ray", "name": "Bệnh viện Chợ Rẫy"},
    _patient("p-lan", "Nguyễn Thị Lan", "female"),
    _patient("p-minh", "Trần Văn Minh", "male"),
    _patient("p-hoa", "Lê Thị Hoà", "female"),
    {
        "resourceType": "Encounter",
        "id": "enc-lan",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p-lan"},
        "serviceProvider": {"reference": "Organization/org-cho-ray"},
    },
    _obs("obs-lan-glucose", "p-lan", "2339-0", 7.8),
    _obs("obs-lan-hba1c", "p-lan", "4548-4", 6.9),
    _obs("obs-minh-glucose", "p-minh", "2339-0", 5.1),
    {
        "resourceType": "Condition",
        "id": "cond-hoa",
        "subject": {"reference": "Patient/p-hoa"},
        "code": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11", "display": "Đái tháo đường típ 2"}
            ]
        },
    },
    {
        "resourceType": "Group",
        "id": "grp-dai-thao-duong",
        "type": "person",
        "actual": True,
        "name": "Bệnh nhân đái tháo đường khoa Nội tiết",
        "member": [{"entity": {"reference": "Patient/p-lan"}}, {"entity": {"reference": "Patient/p-minh"}}],
    },
]


@pytest.fixture
def export_settings() -> dict:
    """Export settings of one test (tests override entries before the app is built)."""
    return {"export_retry_after": 0}


@pytest.fixture
def settings(db_url, tmp_path, export_settings) -> Settings:
    """Settings over the fresh database with a private export directory."""
    return Settings(database_url=db_url, export_dir=str(tmp_path / "exports"), **export_settings)


async def _load(client) -> None:
    for body in RESOURCES:
        r = await client.put(f"/{body['resourceType']}/{body['id']}", json=body)
        assert r.status_code in (200, 201), r.text


async def _kickoff(client, path: str, **params) -> str:
    r = await client.get(
        path, params=params, headers={"Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    assert r.status_code == 202, r.text
    return r.headers["content-location"]


async def _wait(client, status_url: str, seen: list | None = None):
    """Poll until the job is no longer in progress, sleeping what Retry-After says."""
    for _ in range(2000):
        r = await client.get(status_url)
        if r.status_code != 202:
            return r
        assert r.headers["x-progress"]
        if seen is not None:
            seen.append(r)
        await asyncio.sleep(max(int(r.headers["retry-after"]), 0.05))
    raise AssertionError("export did not finish")


async def _export(client, path: str, **params) -> tuple[dict, dict[str, list[dict]]]:
    """Run one export; the manifest and the downloaded resources by type."""
    r = await _wait(client, await _kickoff(client, path, **params))
    assert r.status_code == 200, r.text
    manifest = r.json()
    by_type: dict[str, list[dict]] = {}
    for entry in manifest["output"]:
        f = await client.get(entry["url"])
        assert f.status_code == 200 and f.headers["content-type"].startswith("application/fhir+ndjson")
        lines = f.content.splitlines()
        assert len(lines) == entry["count"]
        by_type.setdefault(entry["type"], []).extend(orjson.loads(x) for x in lines)
    return manifest, by_type


def _ids(by_type: dict[str, list[dict]], res_type: str) -> set[str]:
    return {r["id"] for r in by_type.get(res_type, [])}


async def test_system_export_runs_the_whole_bulk_data_flow(client):
    await _load(client)
    kick = await client.get(
        "/$export", params={"_outputFormat": "application/fhir+ndjson"}, headers={"Prefer": "respond-async"}
    )
    assert kick.status_code == 202 and kick.headers["content-location"].startswith(
        "http://test/fhir/$export-status/"
    )
    r = await _wait(client, kick.headers["content-location"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    manifest = r.json()
    assert manifest["request"] == "http://test/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson"
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    assert manifest["transactionTime"].endswith("Z") or "+" in manifest["transactionTime"]
    counts = {e["type"]: e["count"] for e in manifest["output"]}
    assert counts == {
        "Condition": 1,
        "Encounter": 1,
        "Group": 1,
        "Observation": 3,
        "Organization": 1,
        "Patient": 3,
    }
    lan = next(e for e in manifest["output"] if e["type"] == "Patient")
    lines = (await client.get(lan["url"])).content.splitlines()
    stored = (await client.get("/Patient/p-lan")).content
    assert stored in lines  # the stored bytes, not a re-serialization
    assert orjson.loads(stored)["name"][0]["text"] == "Nguyễn Thị Lan"


async def test_kickoff_without_respond_async_is_refused(client):
    r = await client.get("/$export")
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert "respond-async" in r.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "params",
    [
        {"_outputFormat": "text/csv"},
        {"_type": "BenhNhan"},
        {"_since": "hôm qua"},
        {"_elements": "id"},
        {"_typeFilter": "Observation?tham-so-la=1"},
        {"_type": "Patient", "_typeFilter": "Observation?code=2339-0"},
        {"_typeFilter": "Observation"},
    ],
)
async def test_bad_kickoff_parameters_are_a_400_outcome(client, params):
    r = await client.get("/$export", params=params, headers={"Prefer": "respond-async"})
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_unknown_parameters_are_ignored_with_lenient_handling(client):
    r = await client.get(
        "/$export", params={"_elements": "id"}, headers={"Prefer": "respond-async, handling=lenient"}
    )
    assert r.status_code == 202


async def test_every_output_format_alias_is_accepted(client):
    await _load(client)
    for fmt in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        _, by_type = await _export(client, "/$export", _outputFormat=fmt, _type="Organization")
        assert _ids(by_type, "Organization") == {"org-cho-ray"}


async def test_type_and_since_limit_what_is_exported(client):
    await _load(client)
    time.sleep(0.002)
    since = instant(now_us())
    time.sleep(0.002)
    changed = _obs("obs-minh-glucose", "p-minh", "2339-0", 9.4)
    assert (await client.put("/Observation/obs-minh-glucose", json=changed)).status_code == 200
    manifest, by_type = await _export(client, "/$export", _type="Observation,Patient", _since=since)
    assert {e["type"] for e in manifest["output"]} == {"Observation"}
    assert _ids(by_type, "Observation") == {"obs-minh-glucose"}
    assert by_type["Observation"][0]["valueQuantity"]["value"] == 9.4


async def test_type_filter_exports_only_matching_resources(client):
    await _load(client)
    _, by_type = await _export(
        client, "/$export", _type="Observation,Patient", _typeFilter=f"Observation?code={LOINC}|2339-0"
    )
    assert _ids(by_type, "Observation") == {"obs-lan-glucose", "obs-minh-glucose"}
    assert _ids(by_type, "Patient") == {"p-lan", "p-minh", "p-hoa"}  # no filter: the whole type
    _, by_type = await _export(client, "/$export", _typeFilter=f"Observation?code={LOINC}|4548-4")
    assert _ids(by_type, "Observation") == {"obs-lan-hba1c"}
    assert _ids(by_type, "Organization") == {"org-cho-ray"}  # without _type: every other type whole


async def test_patient_export_is_the_patient_compartments(client):
    await _load(client)
    manifest, by_type = await _export(client, "/Patient/$export")
    # Group is in the official Patient compartment (Group.member).
    assert set(by_type) == {"Patient", "Observation", "Encounter", "Condition", "Group"}
    assert _ids(by_type, "Patient") == {"p-lan", "p-minh", "p-hoa"}
    # A type outside the compartment is reported as an OperationOutcome line, not silently dropped.
    manifest, by_type = await _export(client, "/Patient/$export", _type="Organization,Patient")
    assert [e["type"] for e in manifest["error"]] == ["OperationOutcome"]
    outcome = orjson.loads((await client.get(manifest["error"][0]["url"])).content.splitlines()[0])
    assert (
        outcome["resourceType"] == "OperationOutcome" and "Organization" in outcome["issue"][0]["diagnostics"]
    )


async def test_group_export_is_limited_to_its_members(client):
    await _load(client)
    _, by_type = await _export(client, "/Group/grp-dai-thao-duong/$export")
    assert _ids(by_type, "Patient") == {"p-lan", "p-minh"}
    assert _ids(by_type, "Observation") == {"obs-lan-glucose", "obs-lan-hba1c", "obs-minh-glucose"}
    assert "Condition" not in by_type  # Lê Thị Hoà is not a member


async def test_group_export_of_an_unknown_group_is_404(client):
    r = await client.get("/Group/khong-co/$export", headers={"Prefer": "respond-async"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


async def test_kickoff_by_post_with_parameters(client):
    await _load(client)
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Condition"}]}
    r = await client.post("/$export", json=body, headers={"Prefer": "respond-async"})
    assert r.status_code == 202
    manifest = (await _wait(client, r.headers["content-location"])).json()
    assert [(e["type"], e["count"]) for e in manifest["output"]] == [("Condition", 1)]


@pytest.mark.parametrize("export_settings", [{"export_retry_after": 0, "export_file_max_bytes": 400}])
async def test_files_are_split_at_the_size_limit(client, settings):
    await _load(client)
    manifest, by_type = await _export(client, "/$export", _type="Observation")
    files = [e for e in manifest["output"] if e["type"] == "Observation"]
    assert len(files) > 1 and sum(e["count"] for e in files) == 3
    assert _ids(by_type, "Observation") == {"obs-lan-glucose", "obs-lan-hba1c", "obs-minh-glucose"}
    for entry in files:
        job, attempt, name = entry["url"].split("/")[-3:]
        size = (Path(settings.export_dir) / job / attempt / name).stat().st_size
        assert size <= 400 or entry["count"] == 1


async def test_delete_removes_the_files_and_the_job(client, settings):
    await _load(client)
    status_url = await _kickoff(client, "/$export")
    manifest = (await _wait(client, status_url)).json()
    job_dir = Path(settings.export_dir) / status_url.rsplit("/", 1)[-1]
    assert job_dir.is_dir()
    assert (await client.delete(status_url)).status_code == 202
    assert not job_dir.exists()
    assert (await client.get(status_url)).status_code == 404
    assert (await client.get(manifest["output"][0]["url"])).status_code == 404
    assert (await client.delete(status_url)).status_code == 404


async def test_cancelling_a_queued_job_means_it_never_completes(client, store, settings):
    store.exports.create(
        "xuat-bi-huy",
        "system",
        {"types": None, "since": None, "filters": {}, "patients": None},
        "http://test/fhir/$export",
        None,
    )
    r = await client.delete("http://test/fhir/$export-status/xuat-bi-huy")
    assert r.status_code == 202
    assert (await client.get("http://test/fhir/$export-status/xuat-bi-huy")).status_code == 404


@pytest.mark.parametrize("export_settings", [{"export_retry_after": 0, "export_expire_seconds": 0}])
async def test_files_expire(client, settings):
    await _load(client)
    status_url = await _kickoff(client, "/$export", _type="Patient")
    r = await _wait(client, status_url)
    assert r.status_code == 404  # finished and already past its expiry
    assert not (Path(settings.export_dir) / status_url.rsplit("/", 1)[-1]).exists()


@pytest.mark.parametrize("export_settings", [{"export_retry_after": 0, "export_stale_seconds": 0}])
async def test_a_job_left_running_by_a_dead_worker_is_taken_over(client, store):
    await _load(client)
    params = {"types": ["Patient"], "since": None, "filters": {}, "patients": None}
    store.exports.create("xuat-mo-coi", "system", params, "http://test/fhir/$export?_type=Patient", None)
    job = store.exports.claim("may-chu-da-chet:1:dead", now_us())
    assert job is not None and job.status == "running" and job.attempts == 1
    r = await _wait(client, "http://test/fhir/$export-status/xuat-mo-coi")
    assert r.status_code == 200
    assert [(e["type"], e["count"]) for e in r.json()["output"]] == [("Patient", 3)]
    job = store.exports.get("xuat-mo-coi")
    assert job.attempts == 2 and job.worker != "may-chu-da-chet:1:dead"


async def test_workers_of_several_processes_never_claim_the_same_job(db_url, store):
    jobs = [f"job-{i:02d}" for i in range(24)]
    for job_id in jobs:
        store.exports.create(job_id, "system", {"types": ["Patient"]}, "http://test/fhir/$export", None)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        own = open_store(db_url)  # its own engine and connections, as another process would have
        try:
            start.wait()
            while (job := own.exports.claim(f"worker-{n}", 0)) is not None:
                with lock:
                    claimed.append((job.id, f"worker-{n}"))
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in claimed) == jobs  # every job once, none twice
    assert all(store.exports.get(j).attempts == 1 for j in jobs)


def _token(scope: str, sub: str = "so-y-te-ha-noi") -> str:
    return jwt.encode({"sub": sub, "scope": scope, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "export_settings", [{"export_retry_after": 0, "auth_mode": "jwt", "jwt_secret": SECRET}]
)
async def test_export_needs_a_read_scope_for_every_exported_type(client):
    limited = {
        "Authorization": f"Bearer {_token('system/Patient.read system/Observation.read')}",
        "Prefer": "respond-async",
    }
    ok = await client.get("/Patient/$export", params={"_type": "Patient,Observation"}, headers=limited)
    assert ok.status_code == 202
    refused = await client.get("/Patient/$export", params={"_type": "Patient,Condition"}, headers=limited)
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    everything = await client.get("/Patient/$export", headers=limited)
    assert everything.status_code == 403


@pytest.mark.parametrize(
    "export_settings", [{"export_retry_after": 0, "auth_mode": "jwt", "jwt_secret": SECRET}]
)
async def test_only_the_requester_sees_its_export(client):
    mine = {"Authorization": f"Bearer {_token('system/*.read')}"}
    other = {"Authorization": f"Bearer {_token('system/*.read', sub='so-y-te-da-nang')}"}
    r = await client.get("/$export", headers={**mine, "Prefer": "respond-async"})
    assert r.status_code == 202
    status_url = r.headers["content-location"]
    assert (await client.get(status_url, headers=other)).status_code == 404
    for _ in range(2000):
        done = await client.get(status_url, headers=mine)
        if done.status_code != 202:
            break
        await asyncio.sleep(0.05)
    assert done.status_code == 200 and done.json()["requiresAccessToken"] is True


async def test_only_files_listed_in_the_manifest_can_be_downloaded(client, settings):
    await _load(client)
    status_url = await _kickoff(client, "/$export", _type="Patient")
    manifest = (await _wait(client, status_url)).json()
    job_id = status_url.rsplit("/", 1)[-1]
    (Path(settings.export_dir) / "bi-mat.txt").write_text("không được tải")
    for name in ("../bi-mat.txt", "1/../../bi-mat.txt", "1/Patient-9.ndjson"):
        r = await client.get(f"http://test/fhir/$export-file/{job_id}/{name}")
        assert r.status_code == 404, name
    assert (await client.get(manifest["output"][0]["url"])).status_code == 200


async def test_delete_while_running_stops_the_worker_and_removes_its_files(client, store, settings, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("holds the worker with a PostgreSQL table lock")
    import psycopg

    await _load(client)
    blocker = psycopg.connect(db_url)
    blocker.execute("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE")  # the worker claims, then waits
    try:
        status_url = await _kickoff(client, "/$export")
        job_id = status_url.rsplit("/", 1)[-1]
        for _ in range(2000):
            job = store.exports.get(job_id)
            if job.status == "running":
                break
            await asyncio.sleep(0.01)
        assert job.status == "running"
        assert (await client.delete(status_url)).status_code == 202
    finally:
        blocker.rollback()
        blocker.close()
    job_dir = Path(settings.export_dir) / job_id
    for _ in range(2000):  # the worker writes its first page, finds the job cancelled, removes its folder
        if store.exports.get(job_id) is None or not any(job_dir.rglob("*.ndjson")):
            break
        await asyncio.sleep(0.01)
    assert (await client.get(status_url)).status_code == 404
    for _ in range(2000):
        if not any(job_dir.rglob("*.ndjson")):
            break
        await asyncio.sleep(0.01)
    assert not any(job_dir.rglob("*.ndjson"))


async def test_a_job_stopped_by_a_shutdown_goes_back_to_the_queue_and_the_next_start_finishes_it(
    client, app, store, settings
):
    from fhir_server.operations.export import ExportWorker, start_worker, stop_worker

    await _load(client)
    params = {"types": ["Patient"], "since": None, "filters": {}, "patients": None}
    store.exports.create("xuat-khi-tat", "system", params, "http://test/fhir/$export?_type=Patient", None)
    ctx = app.state.context
    stopping = ExportWorker(ctx)
    job = store.exports.claim(stopping.worker_id, 0)
    assert job is not None and job.status == "running"
    stopping.stop.set()  # the server is shutting down while the job runs: it stops after its first page
    assert stopping.run_claimed(job) is False
    queued = store.exports.get("xuat-khi-tat")
    assert queued.status == "queued" and queued.worker is None
    assert not (Path(settings.export_dir) / "xuat-khi-tat" / "1").exists()  # its partial files are gone
    start_worker(ctx)  # the next server start
    try:
        for _ in range(300):
            done = store.exports.get("xuat-khi-tat")
            if done.status == "done":
                break
            time.sleep(0.05)
    finally:
        stop_worker(ctx)
    assert done.status == "done" and done.attempts == 2
    assert [(e["type"], e["count"]) for e in done.manifest["output"]] == [("Patient", 3)]
