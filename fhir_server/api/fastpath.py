"""The direct route: GET read, vread and type-level search answered without FastAPI's routing and
dependency injection, which profiled as the largest share of a read's server CPU (issue 20).

It is the innermost middleware, so every outer layer still runs as for any request: XML negotiation,
audit, metrics, the auth gate's decision, the /ui gate and the rate limit. It answers with the very
functions the FastAPI routes call (`rest.answer_read`, `rest.answer_vread`, `search.answer_search`)
and errors as the app's FhirError handler does; an unexpected error rises to the app's 500 handler as
from a route. Which paths it takes is decided at start-up by asking the app's own router which
endpoint each resource type's read, vread and search path reaches; anything else (other methods,
HEAD, ids that are not FHIR ids, types another route claims) falls through to FastAPI unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Match

from fhir_server.api.deps import AppContext
from fhir_server.api.responses import error_response, request_lang
from fhir_server.api.rest import answer_read, answer_vread
from fhir_server.api.rest import read as read_route
from fhir_server.api.rest import vread as vread_route
from fhir_server.api.search import answer_search
from fhir_server.api.search import search_type as search_route
from fhir_server.errors import FhirError
from fhir_server.search.registry import get_registry

# FHIR id syntax: anything else ($operations, _history, _search, bad ids) is left to FastAPI.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PROBE_ID = "probe-id"


def _endpoint(routes, scope: dict) -> Callable | None:
    """The endpoint the app's router would call for `scope` (the first full match, as Starlette does).

    FastAPI keeps included routers as nested branches that resolve their routes on their own (its
    `_match`); a branch of unknown shape answers None, which leaves that path to FastAPI: a FastAPI
    change can only turn the direct route off, never send a request to the wrong answer."""
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        if "endpoint" in child:
            return child["endpoint"]
        resolve = getattr(route, "_match", None)
        if resolve is None:
            return None
        _match, _child, inner, _context = resolve(scope)
        if inner is None:
            return None
        return getattr(inner, "endpoint", None) or _endpoint([inner], scope)
    return None


def _probe(router, path: str) -> Callable | None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    return _endpoint(router.routes, scope)


def routed_types(router, base: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The resource types whose read, vread and search paths reach the generic routes (start-up probe)."""
    reads, vreads, searches = set(), set(), set()
    for t in get_registry().resource_types:
        if _probe(router, f"{base}/{t}/{_PROBE_ID}") is read_route:
            reads.add(t)
        if _probe(router, f"{base}/{t}/{_PROBE_ID}/_history/1") is vread_route:
            vreads.add(t)
        if _probe(router, f"{base}/{t}") is search_route:
            searches.add(t)
    return frozenset(reads), frozenset(vreads), frozenset(searches)


class FastPath:
    """Pure ASGI: answers the hottest GETs itself, everything else goes on to FastAPI."""

    def __init__(self, app, router, context: AppContext, base_path: str) -> None:
        self.app = app
        self.store = context.store
        # A read by id is one indexed, prepared SELECT: done on the loop's thread it needs no thread hop,
        # and no pool thread can be left waiting for the GIL behind the busy loop (issue 20, read tail).
        self.read_on_loop = context.settings.read_on_loop
        self.prefix = base_path.rstrip("/") + "/"
        # The middleware stack is built on the first request, after every router was included.
        self.reads, self.vreads, self.searches = routed_types(router, base_path.rstrip("/"))

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope.get("root_path")  # mounted under a prefix: leave the path arithmetic to Starlette
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        parts = scope["path"][len(self.prefix) :].split("/")
        n = len(parts)
        if n == 2 and parts[0] in self.reads and _ID.fullmatch(parts[1]):
            answer = answer_read(Request(scope, receive), self.store, parts[0], parts[1], self.read_on_loop)
        elif (
            n == 4
            and parts[2] == "_history"
            and parts[3]
            and parts[0] in self.vreads
            and _ID.fullmatch(parts[1])
        ):
            answer = answer_vread(Request(scope, receive), self.store, parts[0], parts[1], parts[3])
        elif n == 1 and parts[0] in self.searches:
            answer = answer_search(Request(scope, receive), parts[0], self.read_on_loop)
        else:
            await self.app(scope, receive, send)
            return
        try:
            response = await answer
        except FhirError as exc:
            response = error_response(exc, request_lang(Request(scope)))
        await response(scope, receive, send)
