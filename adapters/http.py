"""HTTP ingest: POST raw QĐ130 / HL7 v2 payloads, list and replay dead letters (mounted beside /fhir).

Status codes: 200 every record accepted; 207 some accepted, some rejected; 422 nothing accepted
(unrecognised format, bad file, or every record rejected). The JSON body always carries per-record
results, so clients can act on 207/422 without guessing; their texts follow Accept-Language (vi/en).
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from adapters import registry
from adapters.pipeline import ingest as run_ingest
from adapters.pipeline import replay as run_replay
from adapters.repository import ingest_repository
from fhir_server.api.body import read_bounded
from fhir_server.api.deps import Ctx, Store
from fhir_server.api.responses import request_lang
from fhir_server.i18n import use_lang

router = APIRouter(tags=["ingest"])
# Row ids and paging arguments are BIGINT in the database: larger or negative values are a 400
# (RequestValidationError), not a driver overflow (issue 12).
RowId = Annotated[int, Path(ge=0, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]
DeadLetterStatus = Literal["open", "replayed", "failed", "all"]  # anything else (NUL…) is a 400

_OPTION_PARAMS = ("vendor", "profile_set")
HL7_MEDIA = "x-application/hl7-v2+er7"


def _json(data, status: int = 200) -> Response:
    """orjson response (handles bytes-free dicts quickly)."""
    return Response(
        orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


def _status(result) -> int:
    """200 all ok, 207 partial, 422 nothing accepted."""
    if result.accepted and not result.rejected and not result.errors:
        return 200
    return 207 if result.accepted else 422


async def _ingest(request: Request, ctx, adapter: str | None) -> Response:
    """Shared body of both POST routes."""
    if adapter is not None:
        try:
            registry.get_adapter(adapter)
        except KeyError as exc:
            return _json({"error": str(exc.args[0])}, 404)
    payload = await read_bounded(request)
    options = {k: request.query_params[k] for k in _OPTION_PARAMS if request.query_params.get(k)}
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.facility:
        # A hospital client ingests only its own facility's records (checked record by record); the
        # binding travels with the archived options, so broker workers and replays apply it too.
        options["bound_facility"] = principal.facility
    client = request.client.host if request.client else "unknown"
    source = request.query_params.get("source") or f"http:{client}"
    if ctx.settings.broker_url:
        return await _enqueue(ctx, payload, source, adapter, request.headers.get("content-type"), options)
    # Error and warning texts in the client's language (Accept-Language: vi | en; English by default).
    with use_lang(request_lang(request)):
        result = await run_in_threadpool(
            run_ingest,
            ctx.store,
            payload,
            source=source,
            adapter=adapter,
            content_type=request.headers.get("content-type"),
            options=options,
            settings=ctx.settings,
        )
    if result.adapter == "hl7v2" and _wants_hl7(request):
        from adapters.hl7v2.processor import ack_for

        return Response(ack_for(payload, result), _status(result), media_type=HL7_MEDIA)
    return _json(result.as_dict(), _status(result))


def _wants_hl7(request: Request) -> bool:
    """HL7 v2 senders may ask for the ACK itself instead of the JSON result (Accept: ER7 media type)."""
    accept = (request.headers.get("accept") or "").lower()
    return "hl7-v2" in accept


async def _enqueue(ctx, payload: bytes, source: str, adapter: str | None, content_type, options) -> Response:
    """Broker mode: archive, queue for the workers, answer 202 with the inbox id to follow."""
    from adapters.broker import enqueue

    try:
        queued = await enqueue(ctx.store, ctx.settings, [(payload, source)], adapter, content_type, options)
    except KeyError as exc:  # no adapter recognises the payload: nothing to queue
        return _json({"error": str(exc.args[0]) if exc.args else str(exc)}, 422)
    inbox_id, published = queued[0]
    body = {"inbox_id": inbox_id, "status": "queued", "published": published}
    return _json(body, 202)


@router.get("/ingest/inbox/{inbox_id}")
async def inbox_status(store: Store, inbox_id: RowId) -> Response:
    """Status and per-record outcome of one archived payload (follow a 202 from broker mode)."""
    row = await run_in_threadpool(ingest_repository(store).get_inbox, inbox_id)
    if row is None:
        return _json({"error": f"no inbox row {inbox_id}"}, 404)
    row.pop("payload", None)
    return _json(row)


@router.post("/ingest")
async def ingest_auto(request: Request, ctx: Ctx) -> Response:
    """Ingest a raw payload, detecting the adapter by sniffing."""
    return await _ingest(request, ctx, None)


@router.get("/ingest/dead-letters")
async def dead_letters(
    store: Store, status: DeadLetterStatus = "open", limit: Limit = 100, offset: Offset = 0
) -> Response:
    """List dead letters (without payloads); status=all lists every state."""
    repo = ingest_repository(store)
    st = None if status == "all" else status
    rows = await run_in_threadpool(repo.list_dead_letters, st, min(limit, 1000), offset)
    total = await run_in_threadpool(repo.count_dead_letters, st)
    return _json({"total": total, "items": rows})


@router.post("/ingest/dead-letters/{dl_id}/replay")
async def replay_one(request: Request, ctx: Ctx, dl_id: RowId) -> Response:
    """Re-run one dead letter through its adapter (after a mapping fix)."""
    with use_lang(request_lang(request)):
        outcome = (await run_in_threadpool(run_replay, ctx.store, dl_id, settings=ctx.settings))[0]
    code = {"replayed": 200, "not-found": 404}.get(outcome["status"], 422)
    return _json(outcome, code)


@router.post("/ingest/{adapter}")
async def ingest_named(request: Request, ctx: Ctx, adapter: str) -> Response:
    """Ingest a raw payload with the named adapter (e.g. qd130, hl7v2)."""
    return await _ingest(request, ctx, adapter)
