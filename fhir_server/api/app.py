"""The FHIR server's ASGI application: REST API, operations, identity review queue and clinician view.

`create_app` takes the routers of other components (the ingest endpoints of the adapters) from its
caller, the composition root (`lienthong.app`), so this package never imports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_server.api import history, rest, search, system
from fhir_server.api.deps import AppContext
from fhir_server.api.responses import error_response, request_lang
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.identity import api as identity_api
from fhir_server.interactions.group import STATS as GROUP_STATS
from fhir_server.logsafe import log_failure
from fhir_server.operations import OPERATIONS
from fhir_server.security import AuthConfig, authorize
from fhir_server.settings import Settings
from fhir_server.storage import Storage, open_store
from fhir_server.ui import reports as ui_reports
from fhir_server.ui import routes as ui_routes

log = logging.getLogger("lienthong.api")


class MetricsMiddleware:
    """Request count and latency per method and status (pure ASGI: BaseHTTPMiddleware costs ~0.5 ms).

    Labels carry method and status only: paths contain resource ids, which are patient data."""

    def __init__(self, app, requests_total: Counter, latency: Histogram):
        self.app = app
        self.requests_total = requests_total
        self.latency = latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "")
            self.requests_total.labels(method, str(status[0])).inc()
            self.latency.labels(method).observe(time.perf_counter() - start)


def _auth_config(settings: Settings) -> AuthConfig | None:
    """Token verification settings, or None when auth is off; refuses to start half-configured."""
    if settings.auth_mode == "off":
        return None
    if settings.auth_mode != "jwt":
        raise ValueError(f"LIENTHONG_AUTH must be 'off' or 'jwt', not {settings.auth_mode!r}")
    algorithms = tuple(a.strip() for a in settings.jwt_algorithms.split(",") if a.strip())
    if settings.jwt_public_key:
        return AuthConfig(
            settings.jwt_public_key,
            tuple(a for a in algorithms if not a.startswith("HS")),
            settings.jwt_audience,
        )
    if settings.jwt_secret:
        return AuthConfig(
            settings.jwt_secret, tuple(a for a in algorithms if a.startswith("HS")), settings.jwt_audience
        )
    raise ValueError("LIENTHONG_AUTH=jwt needs LIENTHONG_JWT_SECRET or LIENTHONG_JWT_PUBLIC_KEY")


class _GroupCommitCollector:
    """Write-contention counters of group commits, read at scrape time (no work on the write path)."""

    def collect(self):
        """Yield the counters in Prometheus form."""
        retries = CounterMetricFamily(
            "lienthong_group_commit_retries",
            "Group commits run again because a concurrent writer created or changed the same resources",
        )
        retries.add_metric([], GROUP_STATS.retries)
        splits = CounterMetricFamily(
            "lienthong_group_commit_splits",
            "Group commits split into one transaction per Bundle after a database error",
        )
        splits.add_metric([], GROUP_STATS.splits)
        yield retries
        yield splits


def create_app(
    settings: Settings | None = None, store: Storage | None = None, extra_routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """Build the app over a store (opened from settings.database_url unless given); `extra_routers`
    are mounted at the root, beside the FHIR base (e.g. the ingest endpoints)."""
    settings = settings or Settings.from_env()
    store = store or open_store(settings.database_url, pool_size=settings.pool_size)
    app = FastAPI(
        title="Lienthong FHIR server", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json"
    )
    app.state.context = AppContext(settings, store, [op.capability() for op in OPERATIONS])
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    requests_total = Counter(
        "lienthong_http_requests_total", "HTTP requests", ["method", "status"], registry=registry
    )
    latency = Histogram(
        "lienthong_http_request_seconds", "HTTP request latency", ["method"], registry=registry
    )

    app.add_middleware(MetricsMiddleware, requests_total=requests_total, latency=latency)
    registry.register(_GroupCommitCollector())

    auth = _auth_config(settings)
    if auth is not None:

        @app.middleware("http")
        async def _authenticate(request: Request, call_next):
            try:
                request.state.principal = authorize(
                    request.headers, request.method, request.url.path, settings.base_path, auth
                )
            except FhirError as exc:
                return error_response(exc, request_lang(request))
            return await call_next(request)

    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        return error_response(exc, request_lang(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        err = FhirError.bad_request(msg("Invalid request: {detail}", detail=str(exc.errors()[:3])))
        return error_response(err, request_lang(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        detail = str(exc.detail)
        known = {"Not Found": msg("Not Found"), "Method Not Allowed": msg("Method Not Allowed")}
        err = FhirError.make(exc.status_code, code, known.get(detail, detail))
        return error_response(err, request_lang(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and traceback, never the request body (patient data).
        log_failure(log, "unhandled error", exc)
        err = FhirError.make(
            500, "exception", msg("Internal error ({kind})", kind=type(exc).__name__), severity="fatal"
        )
        return error_response(err, request_lang(request))

    @app.get("/metrics", include_in_schema=False)
    async def _metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def _health() -> dict:
        return {"status": "ok"}

    base = settings.base_path
    app.include_router(system.router, prefix=base)
    app.include_router(history.router, prefix=base)
    # Order matters: operation and search routes must win over the generic /{type}/{id} routes.
    for op in OPERATIONS:
        app.include_router(op.router, prefix=base)
    app.include_router(identity_api.router, prefix=base)
    app.include_router(search.router, prefix=base)
    app.include_router(rest.router, prefix=base)
    app.include_router(ui_routes.router)
    app.include_router(ui_reports.router)
    for router in extra_routers:
        app.include_router(router)
    return app
