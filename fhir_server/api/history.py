"""history at instance, type and system level, paged by keyset (last_updated, history row id)."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings, get_store
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.timeutil import instant, parse_instant
from fhir_server.validation import check_type

router = APIRouter()


def _count(request: Request) -> int:
    settings = get_settings(request)
    raw = request.query_params.get("_count")
    if raw is None:
        return settings.default_count
    if not raw.isdigit():
        raise FhirError.bad_request(f"_count must be a non-negative integer, not {raw!r}", code="value")
    return min(int(raw), settings.max_count)


def _instant_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError:
        raise FhirError.bad_request(f"{name} must be a FHIR instant, not {raw!r}", code="value")


def _page_token(raw: str | None) -> tuple[int, int] | None:
    if raw is None:
        return None
    ts, _, hid = raw.partition("-")
    # Both halves are BIGINT columns: more than 18 digits cannot come from a page this server made.
    if not (ts.isdigit() and hid.isdigit()) or len(ts) > 18 or len(hid) > 18:
        raise FhirError.bad_request("Invalid _page token", code="value")
    return int(ts), int(hid)


async def _history(request: Request, res_type: str | None, res_id: str | None) -> Response:
    check_accept(request)
    if res_type:
        check_type(res_type)
    store = get_store(request)
    count = _count(request)
    since = _instant_param(request, "_since")
    at = _instant_param(request, "_at")
    after = _page_token(request.query_params.get("_page"))
    rows = await run_in_threadpool(store.history, res_type, res_id, since, at, count + 1, after)
    if res_id and not rows and after is None and store.read(res_type, res_id) is None:
        raise FhirError.not_found(msg("{ref} not found", ref=f"{res_type}/{res_id}"))
    base = base_url(request)
    path = "/".join(p for p in (res_type, res_id, "_history") if p)
    more = len(rows) > count
    rows = rows[:count]
    entries = []
    for row in rows:
        stored, method = row.stored, row.method
        url = f"{stored.res_type}/{stored.res_id}"
        entry: dict = {"fullUrl": f"{base}/{url}"}
        if stored.content is not None:
            entry["resource"] = orjson.Fragment(stored.content)
        entry["request"] = {
            "method": method,
            "url": url if method in ("PUT", "DELETE", "PATCH") else stored.res_type,
        }
        status = "201 Created" if stored.version == 1 else ("204 No Content" if stored.deleted else "200 OK")
        entry["response"] = {
            "status": status,
            "etag": stored.etag,
            "lastModified": instant(stored.last_updated),
        }
        entries.append(entry)
    keep = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"]
    links = [
        {"relation": "self", "url": f"{base}/{path}" + (f"?{request.url.query}" if request.url.query else "")}
    ]
    if more and rows:
        last_ts, last_hid = rows[-1].stored.last_updated, rows[-1].position
        links.append(
            {
                "relation": "next",
                "url": f"{base}/{path}?" + urlencode(keep + [("_page", f"{last_ts}-{last_hid}")]),
            }
        )
    bundle: dict = {"resourceType": "Bundle", "type": "history"}
    if after is None and not more:
        bundle["total"] = len(entries)
    elif after is None and request.query_params.get("_total") == "accurate":
        bundle["total"] = await run_in_threadpool(store.history_count, res_type, res_id, since)
    bundle["link"] = links
    bundle["entry"] = entries
    return fhir_json(bundle)


@router.get("/_history")
async def system_history(request: Request) -> Response:
    """history-system."""
    return await _history(request, None, None)


@router.get("/{res_type}/_history")
async def type_history(request: Request, res_type: str) -> Response:
    """history-type."""
    return await _history(request, res_type, None)


@router.get("/{res_type}/{res_id}/_history")
async def instance_history(request: Request, res_type: str, res_id: str) -> Response:
    """history-instance."""
    return await _history(request, res_type, res_id)
