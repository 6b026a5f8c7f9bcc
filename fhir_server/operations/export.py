"""FHIR Bulk Data Access 2.0 `$export`: system, Patient and Group level, run as background jobs.

Kick-off (`GET|POST [base]/$export`, `[base]/Patient/$export`, `[base]/Group/[id]/$export`, with
`Prefer: respond-async`) stores a job and answers 202 with the status URL in Content-Location. Any
process of the server runs queued jobs in a background thread (`ExportWorker`): it claims a job
(storage's row lock), streams each type's stored JSON bytes page by page into NDJSON files under
LIENTHONG_EXPORT_DIR/<job>/ (split at LIENTHONG_EXPORT_FILE_MAX_BYTES), beats while it writes, and
stores the manifest. Polling the status URL answers 202 with X-Progress and Retry-After, then 200 and
the completion manifest; DELETE cancels and removes the files; files expire after
LIENTHONG_EXPORT_EXPIRE_SECONDS. A worker that dies leaves a job whose heartbeat goes stale: the next
claim (any process, triggered by a kick-off or a status poll) runs it again from the start.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import AppContext, get_context
from fhir_server.api.responses import base_url
from fhir_server.api.search import query_pairs
from fhir_server.auth.province import effective_province
from fhir_server.auth.tokens import Principal
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.i18n import msg
from fhir_server.logsafe import log_failure
from fhir_server.operations.everything import parameters_to_pairs
from fhir_server.operations.registry import Operation
from fhir_server.search.compartment import patient_compartment
from fhir_server.timeutil import http_date, instant, now_us, parse_instant
from fhir_server.validation import r4_resource_types
from mappings.facilities import all_facilities

log = logging.getLogger("lienthong.export")
router = APIRouter()

OPERATION = Operation(
    "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export", router, level="system"
)
# Patient- and Group-level kick-off share the router above (mounted once).
PATIENT_OPERATION = Operation(
    "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export", APIRouter(), "Patient"
)
GROUP_OPERATION = Operation(
    "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export", APIRouter(), "Group"
)

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
_PARAMS = {"_outputFormat", "_since", "_type", "_typeFilter"}


# -- kick-off parameters -------------------------------------------------------------------------
@dataclass
class ExportRequest:
    """What a kick-off asked for, as stored in the job."""

    types: list[str] | None = None
    since: int | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    patients: list[str] | None = None

    def as_params(self) -> dict:
        """The JSON stored in the job row."""
        return {"types": self.types, "since": self.since, "filters": self.filters, "patients": self.patients}


def _lenient(request: Request) -> bool:
    return "handling=lenient" in request.headers.get("prefer", "").replace(" ", "").lower()


def parse_kickoff(params: list[tuple[str, str]], lenient: bool, store) -> ExportRequest:
    """Validate the kick-off parameters (400 OperationOutcome on anything wrong or unsupported)."""
    out = ExportRequest()
    types: list[str] = []
    filters: list[str] = []
    seen: set[str] = set()
    for name, value in params:
        if name not in _PARAMS:
            if lenient:
                continue
            raise FhirError.bad_request(
                msg("Unknown or unsupported $export parameter {name}", name=name),
                code="not-supported",
                expression=name,
            )
        if name in seen and name in ("_since", "_outputFormat"):
            raise FhirError.bad_request(
                msg("Parameter {name} given more than once", name=name), expression=name
            )
        seen.add(name)
        if name == "_outputFormat" and value not in OUTPUT_FORMATS:
            raise FhirError.bad_request(
                msg("Unsupported _outputFormat {value}; use application/fhir+ndjson", value=value),
                code="not-supported",
                expression=name,
            )
        if name == "_since":
            try:
                out.since = parse_instant(value)
            except ValueError:
                raise FhirError.bad_request(
                    msg("_since must be a FHIR instant, not {value}", value=value), expression=name
                )
        elif name == "_type":
            types += [t.strip() for t in value.split(",") if t.strip()]
        elif name == "_typeFilter":
            filters += (
                [f.strip() for f in value.split(",") if f.strip()] if "?" not in value else [value.strip()]
            )
    unknown = [t for t in types if t not in r4_resource_types()]
    if unknown or ("_type" in seen and not types):
        raise FhirError.bad_request(
            msg("Unknown resource type(s) in _type: {types}", types=", ".join(unknown) or "(empty)"),
            expression="_type",
        )
    if types:
        out.types = sorted(set(types))
    for f in filters:
        res_type, sep, query = f.partition("?")
        if not sep or res_type not in r4_resource_types():
            raise FhirError.bad_request(
                msg("_typeFilter must be Type?search-parameters, not {value}", value=f),
                expression="_typeFilter",
            )
        if out.types is not None and res_type not in out.types:
            raise FhirError.bad_request(
                msg("_typeFilter names {type}, which is not in _type", type=res_type),
                expression="_typeFilter",
            )
        store.exports.check_filter(res_type, query)
        out.filters.setdefault(res_type, []).append(query)
    return out


def _group_members(store, group_id: str) -> list[str]:
    """Active Patient members of a Group (`member.entity` references)."""
    stored = store.read("Group", group_id)
    if stored is None:
        raise FhirError.not_found(msg("{ref} not found", ref=f"Group/{group_id}"))
    if stored.deleted:
        raise FhirError.gone(msg("{ref} was deleted", ref=f"Group/{group_id}"))
    ids = []
    for member in stored.as_dict().get("member") or []:
        ref = (member.get("entity") or {}).get("reference", "")
        res_type, _, res_id = ref.rstrip("/").rpartition("/")
        if member.get("inactive") or res_type.rsplit("/", 1)[-1] != "Patient" or not res_id:
            continue
        ids.append(res_id)
    return sorted(set(ids))


def _check_rights(principal: Principal | None, types: list[str] | None) -> None:
    """With auth on, every exported type needs a read scope (all types: a wildcard read scope)."""
    if principal is None:
        return
    policy = principal.policy
    for res_type in types or [None]:
        # A bulk export is a read of whole types: a patient-context token never holds one.
        ok = not principal.patient and (policy.can(res_type, "r") if res_type else policy.can_all("r"))
        if not ok:
            raise FhirError.make(
                403, "forbidden", msg("Token scopes do not allow reading {type}", type=res_type or "*")
            )


def province_patients(store, province: str) -> list[str]:
    """Patients of a province (new-era code): a home address in it (either era's code, as the address
    index knows both), or a visit to one of its facilities or with a home in it (the visit facts)."""
    facilities = [f.ma_cskcb for f in all_facilities() if f.province_new == province]
    ids = set(store.find("Patient", [("address-state", province)]))
    reports = getattr(store, "reports", None)
    if reports is not None:
        ids.update(reports.patients_of_province(province, facilities))
    return sorted(ids)


def _principal(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def _kickoff(request: Request, level: str, params: list[tuple[str, str]], group_id: str | None) -> str:
    ctx = get_context(request)
    store = ctx.store
    req = parse_kickoff(params, _lenient(request), store)
    if level == "group":
        assert group_id is not None
        req.patients = _group_members(store, group_id)
    _check_rights(_principal(request), req.types)
    principal = _principal(request)
    if principal is not None and principal.province:
        # A health department exports its province's patients only: system level becomes the
        # patient-level export of those patients, a Group keeps only its members who are theirs.
        own = set(province_patients(store, effective_province(principal, None) or ""))
        req.patients = sorted(own if req.patients is None else own.intersection(req.patients))
        level = "group" if level == "group" else "patient"
    job_id = str(uuid.uuid4())
    store.exports.create(
        job_id, level, req.as_params(), str(request.url), principal.subject if principal else None
    )
    ensure_worker(ctx)
    return job_id


async def _start(request: Request, level: str, group_id: str | None = None) -> Response:
    if "respond-async" not in request.headers.get("prefer", "").lower():
        raise FhirError.bad_request(
            msg("$export runs asynchronously: send the header Prefer: respond-async"), code="required"
        )
    params = query_pairs(request)
    if request.method == "POST":
        params += parameters_to_pairs(await json_body(request))
    job_id = await run_in_threadpool(_kickoff, request, level, params, group_id)
    return Response(
        status_code=202, headers={"Content-Location": f"{base_url(request)}/$export-status/{job_id}"}
    )


@router.get("/$export")
@router.post("/$export")
async def export_system(request: Request) -> Response:
    """System-level kick-off: every resource type (or those in _type)."""
    return await _start(request, "system")


@router.get("/Patient/$export")
@router.post("/Patient/$export")
async def export_patients(request: Request) -> Response:
    """Patient-level kick-off: the compartments of all Patients."""
    return await _start(request, "patient")


@router.get("/Group/{group_id}/$export")
@router.post("/Group/{group_id}/$export")
async def export_group(request: Request, group_id: str) -> Response:
    """Group-level kick-off: the compartments of the Group's Patient members."""
    return await _start(request, "group", group_id)


# -- status, download, cancel --------------------------------------------------------------------
def _job_dir(ctx: AppContext, job_id: str) -> Path:
    return Path(ctx.settings.export_dir) / job_id


def _own_job(request: Request, job_id: str):
    ctx = get_context(request)
    cleanup_expired(ctx)
    job = ctx.store.exports.get(job_id)
    principal = _principal(request)
    if (
        job is None
        or job.status == "cancelled"
        or (principal and job.owner and principal.subject != job.owner)
    ):
        raise FhirError.not_found(msg("Export job {id} not found (finished files expire)", id=job_id))
    return ctx, job


def _status(request: Request, job_id: str) -> Response:
    ctx, job = _own_job(request, job_id)
    settings = ctx.settings
    if job.status in ("queued", "running"):
        ensure_worker(ctx)  # a job left by a process that died is taken over by this one
        progress = job.progress or job.status
        return Response(
            status_code=202, headers={"X-Progress": progress, "Retry-After": str(settings.export_retry_after)}
        )
    if job.status == "failed":
        err = FhirError.make(500, "exception", msg("Export failed ({kind})", kind=job.error or "error"))
        raise err
    assert job.manifest is not None
    base = base_url(request)

    def entries(key: str) -> list[dict]:
        return [
            {"type": e["type"], "url": f"{base}/$export-file/{job.id}/{e['file']}", "count": e["count"]}
            for e in job.manifest.get(key, [])  # type: ignore[union-attr]
        ]

    manifest = {
        "transactionTime": instant(job.transaction_time or job.created_at),
        "request": job.request,
        "requiresAccessToken": _principal(request) is not None,
        "output": entries("output"),
        "error": entries("error"),
    }
    headers = {"Expires": http_date(job.expires_at)} if job.expires_at else None
    return Response(orjson.dumps(manifest), media_type="application/json", headers=headers)


@router.get("/$export-status/{job_id}")
async def export_status(request: Request, job_id: str) -> Response:
    """Poll a job: 202 with X-Progress and Retry-After while it runs, then 200 with the manifest."""
    return await run_in_threadpool(_status, request, job_id)


def _cancel(request: Request, job_id: str) -> None:
    ctx, _ = _own_job(request, job_id)
    job = ctx.store.exports.cancel(job_id)
    if job is None:
        raise FhirError.not_found(msg("Export job {id} not found (finished files expire)", id=job_id))
    # A running worker notices at its next page and removes what it wrote; remove what is there now.
    shutil.rmtree(_job_dir(ctx, job_id), ignore_errors=True)


@router.delete("/$export-status/{job_id}")
async def export_cancel(request: Request, job_id: str) -> Response:
    """Cancel a job or delete a finished export's files: 202."""
    await run_in_threadpool(_cancel, request, job_id)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{name:path}")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """Download one NDJSON file of a finished export (streamed from disk)."""
    ctx, job = await run_in_threadpool(_own_job, request, job_id)
    known = {e["file"] for key in ("output", "error") for e in (job.manifest or {}).get(key, [])}
    path = _job_dir(ctx, job_id) / name
    if job.status != "done" or name not in known or not path.is_file():
        raise FhirError.not_found(msg("Export file {name} not found", name=name))
    return FileResponse(path, media_type=NDJSON)


# -- the background worker -----------------------------------------------------------------------
_WORKERS: dict[int, ExportWorker] = {}
_WORKERS_LOCK = threading.Lock()


def ensure_worker(ctx: AppContext, linger: bool = False) -> None:
    """Start this process's export worker for the store unless one is running (it stops when idle);
    a running one is woken so a new job does not wait for its next look."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get(id(ctx.store))
        if (
            worker is not None
            and worker.ctx.store is ctx.store
            and worker.is_alive()
            and not worker.idle.is_set()
        ):
            worker.wake.set()
            return
        worker = ExportWorker(ctx, linger=linger)
        _WORKERS[id(ctx.store)] = worker
        worker.start()


def start_worker(ctx: AppContext) -> None:
    """At server start: resume the jobs a previous process left queued or running, without waiting for a
    request. The worker lingers while any job is unfinished, so one whose dead worker's heartbeat is not
    yet stale is taken over as soon as it is."""
    ensure_worker(ctx, linger=True)


def stop_worker(ctx: AppContext, timeout: float = 10.0) -> None:
    """At server shutdown: stop the worker at its next page and put its job back in the queue."""
    with _WORKERS_LOCK:
        worker = _WORKERS.pop(id(ctx.store), None)
    if worker is None:
        return
    worker.stop.set()
    worker.wake.set()
    worker.join(timeout)  # a worker stuck in a long read is a daemon: its job goes stale and is taken over


def cleanup_expired(ctx: AppContext) -> None:
    """Remove the files and rows of expired (and cancelled) exports."""
    repo = ctx.store.exports
    for job_id in repo.expired(now_us()):
        shutil.rmtree(_job_dir(ctx, job_id), ignore_errors=True)
        repo.forget(job_id)


class Cancelled(Exception):
    """The job was cancelled (or taken over) while this worker ran it."""


class Stopping(Exception):
    """The server is shutting down while this worker runs a job."""


class _Files:
    """NDJSON files of one type, a new file whenever the next line would pass the size limit."""

    def __init__(self, directory: Path, res_type: str, max_bytes: int, prefix: str) -> None:
        self.directory, self.res_type, self.max_bytes, self.prefix = directory, res_type, max_bytes, prefix
        self.files: list[dict] = []
        self._out = None
        self._size = 0

    def write(self, line: bytes) -> None:
        """Append one resource (its stored bytes) as one line."""
        if self._out is None or (self._size and self._size + len(line) + 1 > self.max_bytes):
            self.close()
            name = f"{self.res_type}-{len(self.files) + 1}.ndjson"
            self._out = open(self.directory / name, "wb")  # noqa: SIM115 - closed in close()
            self._size = 0
            self.files.append({"type": self.res_type, "file": self.prefix + name, "count": 0})
        self._out.write(line)
        self._out.write(b"\n")
        self._size += len(line) + 1
        self.files[-1]["count"] += 1

    def close(self) -> None:
        """Close the current file."""
        if self._out is not None:
            self._out.close()
            self._out = None


class ExportWorker(threading.Thread):
    """Runs queued export jobs of one store until none is left, then stops."""

    def __init__(self, ctx: AppContext, linger: bool = False) -> None:
        super().__init__(daemon=True, name="lienthong-export")
        self.ctx = ctx
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.idle = threading.Event()
        self.linger = linger  # keep looking while jobs are unfinished (started at boot)
        self.stop = threading.Event()
        self.wake = threading.Event()

    def _lingers(self) -> bool:
        """True while a boot worker should wait for a job that is not claimable yet."""
        if not self.linger or self.stop.is_set():
            return False
        try:
            return self.ctx.store.exports.unfinished() > 0
        except Exception as exc:
            log_failure(log, "export worker could not count jobs", exc)
            return False

    def run(self) -> None:
        """Claim and run jobs until there are none (or the server stops)."""
        repo = self.ctx.store.exports
        settings = self.ctx.settings
        poll = max(0.2, min(settings.export_stale_seconds / 2, 5.0))
        while not self.stop.is_set():
            try:
                cleanup_expired(self.ctx)
                stale_before = now_us() - settings.export_stale_seconds * 1_000_000
                job = repo.claim(self.worker_id, stale_before)
            except Exception as exc:  # the database went away (shutdown): nothing to do
                log_failure(log, "export worker could not claim a job", exc)
                job = None
            if job is None:
                if self._lingers():
                    self.wake.wait(poll)
                    self.wake.clear()
                    continue
                if self.idle.is_set():
                    return
                # A kick-off that saw this worker busy just before it went idle relies on it: look once more.
                self.idle.set()
                continue
            self.idle.clear()
            if not self.run_claimed(job):
                return

    def run_claimed(self, job) -> bool:
        """Run one job this worker claimed, recording how it ended; False when the server is stopping
        (the job is back in the queue, for the next process to start at once)."""
        repo = self.ctx.store.exports
        settings = self.ctx.settings
        try:
            self.run_job(job)
        except Stopping:
            shutil.rmtree(_job_dir(self.ctx, job.id) / str(job.attempts), ignore_errors=True)
            try:
                repo.release(job.id, self.worker_id)
            except Exception as exc:
                log_failure(log, "export job could not be put back in the queue", exc)
            return False
        except Cancelled:  # cancelled (its folder is gone already) or taken over: remove this run's files
            shutil.rmtree(_job_dir(self.ctx, job.id) / str(job.attempts), ignore_errors=True)
        except Exception as exc:
            log_failure(log, "export job failed", exc)
            expires = now_us() + settings.export_expire_seconds * 1_000_000
            try:
                repo.fail(job.id, self.worker_id, type(exc).__name__, expires)
            except Exception as exc2:
                log_failure(log, "export job could not be marked failed", exc2)
        return True

    def run_job(self, job) -> None:
        """Write every requested type's NDJSON files, then the manifest."""
        repo = self.ctx.store.exports
        settings = self.ctx.settings
        # Each run writes its own folder <job>/<attempt>/: a job taken over starts again from nothing,
        # and a worker that was wrongly thought dead cannot mix its files with the new run's.
        job_dir = _job_dir(self.ctx, job.id)
        if job_dir.is_dir():
            for old in job_dir.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        directory = job_dir / str(job.attempts)
        directory.mkdir(parents=True)
        params = job.params
        compartment = job.level in ("patient", "group")
        comp_types = {"Patient", *patient_compartment()}
        wanted = params["types"] or (sorted(comp_types) if compartment else repo.types_present())
        filters = params.get("filters") or {}
        errors: list[bytes] = []
        output: list[dict] = []
        total = 0
        for n, res_type in enumerate(wanted, 1):
            if compartment and res_type not in comp_types:
                errors.append(_outcome(f"{res_type} is not in the Patient compartment; not exported"))
                continue
            files = _Files(directory, res_type, settings.export_file_max_bytes, f"{job.attempts}/")
            try:
                for page in repo.pages(
                    res_type,
                    job.transaction_time,
                    params.get("since"),
                    filters.get(res_type),
                    params.get("patients"),
                    compartment,
                ):
                    for line in page:
                        files.write(line)
                    total += len(page)
                    if self.stop.is_set():
                        raise Stopping()
                    if not repo.beat(job.id, self.worker_id, f"{n}/{len(wanted)} types, {total} resources"):
                        raise Cancelled()
            finally:
                files.close()
            output += files.files
        error_entries = []
        if errors:
            name = "OperationOutcome-1.ndjson"
            (directory / name).write_bytes(b"".join(e + b"\n" for e in errors))
            error_entries.append(
                {"type": "OperationOutcome", "file": f"{job.attempts}/{name}", "count": len(errors)}
            )
        manifest = {"output": output, "error": error_entries}
        expires = now_us() + settings.export_expire_seconds * 1_000_000
        if not repo.finish(job.id, self.worker_id, manifest, expires):
            raise Cancelled()


def _outcome(text: str) -> bytes:
    return orjson.dumps(operation_outcome("warning", "not-supported", text))
