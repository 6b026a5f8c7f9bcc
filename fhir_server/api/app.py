"""The FHIR server's ASGI application: REST API, operations, identity review queue and clinician view.

`create_app` takes the routers of other components (the ingest endpoints of the adapters) from its
caller, the composition root (`lienthong.app`), so this package never imports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_server import audit
from fhir_server.api import history, rest, search, system
from fhir_server.api.deps import AppContext
from fhir_server.api.fastpath import FastPath
from fhir_server.api.responses import error_response, request_lang
from fhir_server.api.xml import XmlMiddleware
from fhir_server.audit import guard as audit_guard
from fhir_server.audit.middleware import AuditMiddleware
from fhir_server.audit.trail import AuditTrail
from fhir_server.auth import authorize
from fhir_server.auth.clients import generate_signing_key, signing_key_from_pem
from fhir_server.auth.gate import AuthGate
from fhir_server.auth.smart import SigningKey, build_router, token_audience
from fhir_server.auth.tokens import AuthConfig
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.identity import api as identity_api
from fhir_server.interactions.group import STATS as GROUP_STATS
from fhir_server.logsafe import log_failure
from fhir_server.operations import OPERATIONS
from fhir_server.operations import export as export_op
from fhir_server.ratelimit import RateLimitMiddleware
from fhir_server.settings import Settings
from fhir_server.storage import Storage, open_store
from fhir_server.ui import login as ui_login
from fhir_server.ui import oidc as ui_oidc
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


class _SafeLoggingApp(FastAPI):
    """FastAPI whose unhandled errors stop here, logged by `logsafe`, instead of reaching the server.

    Starlette answers an unhandled error with our 500 handler and then re-raises it "so servers can
    log it"; uvicorn then logs "Exception in ASGI application" with the exception's message, which can
    carry patient data (issue 12). The handler has already logged the type and frames."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await super().__call__(scope, receive, send)  # lifespan: start-up failures must stop the server
            return
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - the whole point: nothing unlogged leaves the app
            if not getattr(exc, "_lienthong_logged", False):
                log_failure(log, "unhandled error", exc)


def _mark_logged(exc: BaseException) -> None:
    try:
        exc._lienthong_logged = True  # type: ignore[attr-defined]
    except AttributeError:  # exceptions with __slots__
        pass


def auth_configs(settings: Settings) -> list[AuthConfig] | None:
    """Token verification keys from the settings, or None when auth is off; refuses to start half-configured."""
    if settings.auth_mode == "off":
        return None
    if settings.auth_mode not in ("jwt", "smart"):
        raise ValueError(f"LIENTHONG_AUTH must be 'off', 'jwt' or 'smart', not {settings.auth_mode!r}")
    names = [a.strip() for a in settings.jwt_algorithms.split(",")]
    algorithms = tuple(a for a in names if a and a.lower() != "none")
    asymmetric = tuple(a for a in algorithms if not a.startswith("HS"))
    symmetric = tuple(a for a in algorithms if a.startswith("HS"))
    configs = []
    if settings.jwt_public_key:
        configs.append(AuthConfig(settings.jwt_public_key, asymmetric, settings.jwt_audience))
    if settings.jwt_secret:
        configs.append(AuthConfig(settings.jwt_secret, symmetric, settings.jwt_audience))
    if not configs and settings.auth_mode == "jwt":
        raise ValueError("LIENTHONG_AUTH=jwt needs LIENTHONG_JWT_SECRET or LIENTHONG_JWT_PUBLIC_KEY")
    return configs


def _signing_key(settings: Settings, store: Storage) -> tuple[str, str, str]:
    """The token signing key: the configured PEM (file path or text), else the one stored in the database
    (generated on the first start; every worker and restart then signs with the same key)."""
    if settings.signing_key:
        text = settings.signing_key
        if "-----BEGIN" not in text:
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        return signing_key_from_pem(text)
    return store.auth.signing_key(generate_signing_key)  # type: ignore[attr-defined]


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


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Server start: resume the Bulk Data exports a previous process left unfinished (no request needed).
    Shutdown: stop the export worker (its job goes back to the queue), then flush the audit queue."""
    ctx = app.state.context
    async with audit.lifespan(app):
        export_op.start_worker(ctx)
        try:
            yield
        finally:
            await run_in_threadpool(export_op.stop_worker, ctx)


def create_app(
    settings: Settings | None = None, store: Storage | None = None, extra_routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """Build the app over a store (opened from settings.database_url unless given); `extra_routers`
    are mounted at the root, beside the FHIR base (e.g. the ingest endpoints)."""
    settings = settings or Settings.from_env()
    store = store or open_store(settings.database_url, pool_size=settings.pool_size)
    app = _SafeLoggingApp(
        title="Lienthong FHIR server",
        version="0.1.0",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=_lifespan,
    )
    searcher = getattr(store, "searcher", None)
    if searcher is not None:  # the SQL store's search engine (issue 20: A/B of compiled shapes)
        searcher.use_templates = settings.search_templates
    if not settings.read_autocommit and hasattr(store, "read_in_transactions"):  # issue 20: A/B
        store.read_in_transactions()
    app.state.context = AppContext(settings, store, [op.capability() for op in OPERATIONS])
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    requests_total = Counter(
        "lienthong_http_requests_total", "HTTP requests", ["method", "status"], registry=registry
    )
    latency = Histogram(
        "lienthong_http_request_seconds", "HTTP request latency", ["method"], registry=registry
    )

    configs = auth_configs(settings)
    smart_router = None
    if settings.auth_mode == "smart" and configs is not None:
        key = SigningKey(*_signing_key(settings, store))
        configs.append(key.verifier(token_audience(settings)))
        smart_router = build_router(key, store, settings.base_path)
    # Middleware runs outermost-last-added: audit (records refusals too) > metrics (counts them) >
    # token gate (sets request.state.principal) > /ui login (a session when no token came) > rate limit
    # (sees the caller) > direct route > routes.
    # Innermost: the direct route for read, vread and type search (every layer below still applies).
    if settings.direct_route:
        app.add_middleware(
            FastPath, router=app.router, context=app.state.context, base_path=settings.base_path
        )
    if settings.rate_limit > 0:
        exempt = frozenset(s.strip() for s in settings.rate_limit_exempt.split(",") if s.strip())
        app.add_middleware(
            RateLimitMiddleware, rate=settings.rate_limit, burst=settings.rate_limit_burst, exempt=exempt
        )
    app.add_middleware(ui_login.UiGate, settings=settings)  # /ui: security headers, login when auth is on
    if configs is not None:
        app.add_middleware(
            AuthGate,
            base_path=settings.base_path,
            store=store,
            configs=lambda: configs,
            max_body_bytes=settings.max_body_bytes,
        )
    app.add_middleware(MetricsMiddleware, requests_total=requests_total, latency=latency)
    registry.register(_GroupCommitCollector())
    audit_guard.attach_guard(store)
    app.state.audit_trail = None
    if settings.audit_enabled:
        trail = AuditTrail(
            store,
            settings.audit_queue_size,
            settings.audit_batch_size,
            settings.audit_overflow,
            settings.audit_block_timeout,
            linger=settings.audit_linger_ms / 1000,
        )
        app.state.audit_trail = trail
        app.add_middleware(AuditMiddleware, trail=trail, base_path=settings.base_path)
    # Outermost: the gate, audit and routes see JSON bodies; inert unless a request negotiated XML.
    app.add_middleware(XmlMiddleware)

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
        _mark_logged(exc)
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
    if smart_router is not None:  # before the FHIR routes: [base]/.well-known/… is not a resource type
        app.include_router(smart_router)
        app.include_router(authorize.build_router())  # issue 13: SMART App Launch (auth code + PKCE)
    app.include_router(system.router, prefix=base)
    app.include_router(history.router, prefix=base)
    # Order matters: operation and search routes must win over the generic /{type}/{id} routes.
    for op in OPERATIONS:
        app.include_router(op.router, prefix=base)
    app.include_router(identity_api.router, prefix=base)
    app.include_router(search.router, prefix=base)
    app.include_router(
        audit_guard.router, prefix=base
    )  # before the generic routes: AuditEvent is append-only
    app.include_router(rest.router, prefix=base)
    app.include_router(ui_login.router)
    app.include_router(ui_oidc.router)  # issue 13: /ui sign-in through an external OpenID Connect provider
    app.include_router(ui_routes.router)
    app.include_router(ui_reports.router)
    for router in extra_routers:
        app.include_router(router)
    return app
