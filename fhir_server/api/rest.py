"""Instance- and type-level RESTful interactions: read, vread, create, update, patch, delete."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import JSON_MEDIA, PATCH_MEDIA, json_body
from fhir_server.api.deps import Store, get_settings
from fhir_server.api.responses import (
    base_url,
    check_accept,
    delete_response,
    fhir_json,
    version_headers,
    write_response,
)
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.interactions import core as ix
from fhir_server.interactions import integrity, patching
from fhir_server.search.shaping import shape
from fhir_server.storage.base import Storage, StoredResource
from fhir_server.validation import check_type, validate

router = APIRouter()


def _criteria(request: Request) -> str:
    """The search criteria of a conditional interaction (query string minus _format)."""
    return "&".join(p for p in request.url.query.split("&") if p and not p.startswith("_format="))


def _criteria_without(request: Request, name: str) -> str:
    """The criteria without one more result parameter (e.g. _pretty)."""
    return "&".join(p for p in _criteria(request).split("&") if p and not p.startswith(f"{name}="))


@router.get("/{res_type}/{res_id}")
async def read(request: Request, store: Store, res_type: str, res_id: str) -> Response:
    """read: current version with ETag/Last-Modified; 304 when If-None-Match / If-Modified-Since hold;
    `_summary` and `_elements` trim the copy returned."""
    return await answer_read(request, store, res_type, res_id)


@router.get("/{res_type}/{res_id}/_history/{version}")
async def vread(request: Request, store: Store, res_type: str, res_id: str, version: str) -> Response:
    """vread: one version (`_summary` and `_elements` apply as on read)."""
    return await answer_vread(request, store, res_type, res_id, version)


async def answer_read(
    request: Request, store: Storage, res_type: str, res_id: str, on_loop: bool = False
) -> Response:
    """The read interaction's answer, shared by the route above and the direct route (api.fastpath).

    `on_loop`: read on the event loop's own thread instead of a pool thread when a pooled connection
    is idle (see api.fastpath); a read that would wait for a connection still goes to a thread."""
    check_accept(request)
    if on_loop and store.read_is_ready():
        stored = ix.read(store, res_type, res_id)
    else:
        stored = await run_in_threadpool(ix.read, store, res_type, res_id)
    headers = version_headers(stored)
    if _not_modified(request, stored):
        return Response(status_code=304, headers=headers)
    return fhir_json(_shaped(request, stored.content), 200, headers)


async def answer_vread(
    request: Request, store: Storage, res_type: str, res_id: str, version: str
) -> Response:
    """The vread interaction's answer, shared by the route above and the direct route (api.fastpath)."""
    check_accept(request)
    stored = await run_in_threadpool(ix.vread, store, res_type, res_id, version)
    return fhir_json(_shaped(request, stored.content), 200, version_headers(stored))


def _not_modified(request: Request, stored: StoredResource) -> bool:
    """Conditional read (RFC 9110 13.2.2): If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        wanted = {t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")}
        return "*" in wanted or str(stored.version) in wanted
    since = request.headers.get("if-modified-since")
    if since:
        try:
            limit = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # RFC 9110: an invalid date is ignored
        if limit.tzinfo is None:
            return False
        return stored.last_updated // 1_000_000 <= int(limit.timestamp())
    return False


def _shaped(request: Request, content: bytes | None) -> bytes:
    """The stored bytes as they are, or trimmed by `_summary=true|text|data` / `_elements`."""
    if not request.url.query or content is None:
        return content or b""
    summary = request.query_params.get("_summary")
    elements = request.query_params.get("_elements")
    if summary not in (None, "false", "true", "text", "data"):
        raise FhirError.bad_request(
            msg("_summary on a read must be true, text, data or false, not {value!r}", value=summary),
            expression="_summary",
        )
    if summary in (None, "false") and not elements:
        return content
    wanted = [e.strip() for e in (elements or "").split(",") if e.strip()]
    return orjson.dumps(shape(orjson.loads(content), summary if summary != "false" else None, wanted))


@router.post("/{res_type}")
async def create(request: Request, store: Store, res_type: str) -> Response:
    """create, or conditional create with If-None-Exist."""
    check_accept(request)
    check_type(res_type)
    if _criteria_without(request, "_pretty"):
        # Ignoring them would create a duplicate where the client meant "create unless it exists".
        raise FhirError.bad_request(
            msg("POST does not take search parameters; conditional create uses the If-None-Exist header"),
            code="not-supported",
        )
    body = validate(await json_body(request), res_type)
    if_none_exist = request.headers.get("if-none-exist")
    checked = _checked(request, lambda tx, _: ix.create(tx, body, if_none_exist), body)
    result = await run_in_threadpool(store.run, lambda tx: checked(tx, None))
    return write_response(request, result.stored, result.status, result.outcome)


@router.put("/{res_type}/{res_id}")
async def update(request: Request, store: Store, res_type: str, res_id: str) -> Response:
    """update (or update-as-create with the client's id), honouring If-Match."""
    check_accept(request)
    check_type(res_type)
    body = validate(await json_body(request), res_type)
    work = _checked(request, lambda tx, if_match: ix.update(tx, res_type, res_id, body, if_match), body)
    return await _write(request, store, work)


@router.put("/{res_type}")
async def conditional_update(request: Request, store: Store, res_type: str) -> Response:
    """conditional update: PUT Type?criteria."""
    check_accept(request)
    check_type(res_type)
    query = _criteria(request)
    if not query:
        raise FhirError.bad_request("PUT on a type needs search criteria (conditional update) or use Type/id")
    body = validate(await json_body(request), res_type)
    work = _checked(
        request, lambda tx, if_match: ix.conditional_update(tx, res_type, query, body, if_match), body
    )
    return await _write(request, store, work)


@router.patch("/{res_type}/{res_id}")
async def patch(request: Request, store: Store, res_type: str, res_id: str) -> Response:
    """patch with JSON Patch, JSON Merge Patch or FHIRPath Patch (interactions.patching)."""
    check_accept(request)
    check_type(res_type)
    body, kind = await _patch_body(request)
    return await _write(
        request, store, lambda tx, if_match: ix.patch(tx, res_type, res_id, body, if_match, kind)
    )


@router.patch("/{res_type}")
async def conditional_patch(request: Request, store: Store, res_type: str) -> Response:
    """conditional patch: PATCH Type?criteria (404 without a match, 412 with several)."""
    check_accept(request)
    check_type(res_type)
    query = _criteria(request)
    if not query:
        raise FhirError.bad_request(msg("PATCH on a type needs search criteria (conditional patch)"))
    body, kind = await _patch_body(request)
    return await _write(
        request, store, lambda tx, if_match: ix.conditional_patch(tx, res_type, query, body, if_match, kind)
    )


async def _patch_body(request: Request) -> tuple[object, str]:
    """The PATCH document and its format (from Content-Type, else from the body's shape)."""
    body = await json_body(request, PATCH_MEDIA + JSON_MEDIA)
    return body, patching.kind_of(body, request.headers.get("content-type"))


async def _write(request: Request, store, work) -> Response:
    """Run a write interaction (work(tx, if_match)) in a retried transaction and answer it."""
    if_match = ix.parse_version(request.headers.get("if-match"))
    result = await run_in_threadpool(store.run, lambda tx: work(tx, if_match))
    return write_response(request, result.stored, result.status, result.outcome)


def _checked(request: Request, work, body: dict):
    """Wrap a create/update so the written resource's references are checked in the same transaction
    (LIENTHONG_REFERENTIAL_INTEGRITY): strict refuses a dangling reference with 400 and rolls back;
    lenient keeps the write and returns the warnings (Prefer: return=OperationOutcome shows them)."""
    policy = get_settings(request).referential_integrity
    base = base_url(request)

    def run(tx, if_match):
        result = work(tx, if_match)
        if request.method == "POST" and result.status == 200:
            return result  # a conditional create that matched an existing resource wrote nothing
        issues = integrity.check_resource(tx, body, policy, base)
        if issues:
            result.outcome = integrity.outcome_of(issues)
        return result

    return run


@router.delete("/{res_type}/{res_id}")
async def delete(request: Request, store: Store, res_type: str, res_id: str) -> Response:
    """delete (soft); idempotent."""
    check_type(res_type)
    if_match = ix.parse_version(request.headers.get("if-match"))
    result = await run_in_threadpool(store.run, lambda tx: ix.delete(tx, res_type, res_id, if_match))
    return delete_response(request, result.status, result.outcome)


@router.delete("/{res_type}")
async def conditional_delete(request: Request, store: Store, res_type: str) -> Response:
    """conditional delete: DELETE Type?criteria (single match)."""
    check_type(res_type)
    query = _criteria(request)
    if not query:
        raise FhirError.bad_request("DELETE on a type needs search criteria")
    result = await run_in_threadpool(store.run, lambda tx: ix.conditional_delete(tx, res_type, query))
    return delete_response(request, result.status, result.outcome)
