"""FHIR search over HTTP: GET [base]/Type, POST [base]/Type/_search, GET [base]?_type=... (system search)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from fhir_server.api.body import read_bounded
from fhir_server.api.deps import AppContext, get_context
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.query import Limits
from fhir_server.search.registry import get_registry
from fhir_server.search.run import run_search


class _ResourceTypeConvertor(Convertor):
    """Matches only resource-type-shaped segments, so /metadata, /_history, /$op stay with other routers."""

    regex = "[A-Z][A-Za-z]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("restype", _ResourceTypeConvertor())
router = APIRouter()


def _strict(request: Request) -> bool:
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    return "handling=strict" in prefer


def _run(request: Request, res_type: str | None, params: list[tuple[str, str]]) -> bytes:
    ctx: AppContext = get_context(request)
    if res_type is not None and res_type not in get_registry().resource_types:
        raise FhirError.not_found(msg("unknown resource type {type!r}", type=res_type))
    return run_search(
        ctx.store,
        res_type,
        params,
        base_url(request),
        strict=_strict(request),
        default_count=ctx.settings.default_count,
        max_count=ctx.settings.max_count,
        limits=Limits(
            ctx.settings.max_sort_keys, ctx.settings.max_search_joins, ctx.settings.max_chain_depth
        ),
    )


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """The query string as (name, value) pairs, repeats and blank values kept (FHIR needs both)."""
    return parse_qsl(request.url.query, keep_blank_values=True)


@router.get("/{res_type:restype}")
async def search_type(request: Request, res_type: str) -> Response:
    """Type-level search."""
    return await answer_search(request, res_type)


# Result parameters that can make a search read far more than one page of an index: these keep the search
# in a pool thread, off the event loop.
_HEAVY = frozenset(
    {"_total", "_include", "_revinclude", "_has", "_text", "_content", "_filter", "_query", "_list"}
)
_ON_LOOP_MAX_COUNT = 100


def selective(res_type: str, pairs: list[tuple[str, str]]) -> bool:
    """True for a search anchored on an id, an identifier or one referenced resource (a patient's
    Observations): one page from a selective index, cheap enough to run on the event loop's thread."""
    anchored = False
    registry = get_registry()
    for name, value in pairs:
        if ":" in name or "." in name or name in _HEAVY or not value:
            return False
        if name == "_count":
            if not value.isdigit() or int(value) > _ON_LOOP_MAX_COUNT:
                return False
        elif name == "_sort":
            if value.lstrip("-") not in ("_id", "_lastUpdated"):
                return False
        elif name in ("_id", "identifier"):
            anchored = anchored or "," not in value
        elif not name.startswith("_"):
            param = registry.get(res_type, name)
            if param is None:
                return False
            if param.type == "reference" and "," not in value:
                anchored = True
    return anchored


async def answer_search(request: Request, res_type: str, on_loop: bool = False) -> Response:
    """A type-level GET search's answer, shared by the route above and the direct route (api.fastpath).

    `on_loop`: a selective search (see `selective`) runs on the event loop's thread when a pooled
    connection is idle, as a read by id does; anything else goes to a pool thread."""
    check_accept(request)
    pairs = query_pairs(request)
    if on_loop and selective(res_type, pairs) and get_context(request).store.read_is_ready():
        return fhir_json(_run(request, res_type, pairs))
    return fhir_json(await run_in_threadpool(_run, request, res_type, pairs))


@router.post("/{res_type:restype}/_search")
async def search_type_post(request: Request, res_type: str) -> Response:
    """Type-level search with form-encoded parameters (plus any in the query string)."""
    check_accept(request)
    body = (await read_bounded(request)).decode("utf-8")
    ctype = request.headers.get("content-type", "")
    if body and "application/x-www-form-urlencoded" not in ctype:
        raise FhirError.make(
            415, "not-supported", msg("POST _search needs application/x-www-form-urlencoded")
        )
    params = query_pairs(request) + parse_qsl(body, keep_blank_values=True)
    return fhir_json(await run_in_threadpool(_run, request, res_type, params))


@router.get("/")
@router.get("")
async def search_system(request: Request) -> Response:
    """System-level search (use _type to restrict resource types)."""
    check_accept(request)
    return fhir_json(await run_in_threadpool(_run, request, None, query_pairs(request)))


@router.post("/_search")
async def search_system_post(request: Request) -> Response:
    """System-level search with form-encoded parameters."""
    check_accept(request)
    body = (await read_bounded(request)).decode("utf-8")
    params = query_pairs(request) + parse_qsl(body, keep_blank_values=True)
    return fhir_json(await run_in_threadpool(_run, request, None, params))
