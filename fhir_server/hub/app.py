"""The hub's HTTP API.

Federated mode (`/fhir` is the federation): `GET Patient?identifier=…` (or any Patient search),
`POST Patient/$match`, `GET Patient/$everything?identifier=system|value` — each answered from every
node at once, merged into one searchset Bundle. Central mode: `/fhir` is a full FHIR server over the
hub's own store (a copy of every node's data, kept current by the puller). Both: `GET /hub/nodes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.hub.config import HubConfig
from fhir_server.hub.federation import Federation
from fhir_server.settings import Settings

log = logging.getLogger("lienthong.hub")
FHIR_JSON = "application/fhir+json; charset=utf-8"


def _json(payload: dict | list, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=FHIR_JSON)


def _fed(request: Request) -> Federation:
    return request.app.state.federation


def capability(config: HubConfig) -> dict:
    """What the federated hub answers (search on Patient, $match, $everything by identifier)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "Lienthong hub"},
        "implementation": {"description": f"Federation over {len(config.nodes)} node(s)"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {"name": "identifier", "type": "token"},
                            {"name": "name", "type": "string"},
                            {"name": "birthdate", "type": "date"},
                        ],
                        "operation": [
                            {
                                "name": "match",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
                            },
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            },
                        ],
                    }
                ],
            }
        ],
    }


def federation_router(config: HubConfig, base_path: str) -> APIRouter:
    """Routes of the federated FHIR base."""
    router = APIRouter(prefix=base_path)

    @router.get("/metadata")
    async def metadata() -> Response:
        """The hub's CapabilityStatement."""
        return _json(capability(config))

    @router.get("/Patient")
    async def search(request: Request) -> Response:
        """Patient search on every node (the identifier of a CCCD or BHYT card, names, birth date)."""
        params = parse_qsl(request.url.query, keep_blank_values=True)
        if not params:
            raise FhirError.bad_request(
                "Tìm bệnh nhân cần ít nhất một tham số, ví dụ identifier (a federated search needs criteria)"
            )
        return _json(await _fed(request).search_patients(params, str(request.url)))

    @router.post("/Patient/$match")
    async def match(request: Request) -> Response:
        """Patient/$match on every node."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise FhirError.bad_request("Body must be a Parameters resource (JSON)")
        if not isinstance(body, dict) or body.get("resourceType") not in ("Parameters", "Patient"):
            raise FhirError.bad_request("Body must be a Parameters resource with a 'resource' parameter")
        return _json(await _fed(request).match(body, str(request.url)))

    @router.get("/Patient/$everything")
    async def everything(request: Request) -> Response:
        """Every node's record of the person with this identifier (`identifier=system|value`)."""
        params = parse_qsl(request.url.query, keep_blank_values=True)
        idents = [v for k, v in params if k == "identifier" and "|" in v and v.split("|", 1)[1]]
        if len(idents) != 1:
            raise FhirError.bad_request(
                "$everything ở trung tâm cần đúng một identifier=system|value (CCCD hoặc số thẻ BHYT) "
                "(the hub's $everything needs exactly one identifier=system|value)",
                code="required",
                expression="identifier",
            )
        return _json(await _fed(request).everything(idents[0], params, str(request.url)))

    return router


def _gate(app: FastAPI, settings: Settings) -> None:
    """With auth on, the federated hub verifies tokens exactly as a node does (the same AuthGate and
    settings): only /fhir/metadata is public; the federation needs a token with read scopes."""
    from fhir_server.api.app import auth_configs
    from fhir_server.auth.gate import AuthGate

    configs = auth_configs(settings)
    if configs is None:
        return
    if not configs:
        raise ValueError(
            "the federated hub verifies tokens it did not issue: set LIENTHONG_JWT_SECRET or "
            "LIENTHONG_JWT_PUBLIC_KEY (the key of the token issuer)"
        )
    app.add_middleware(
        AuthGate,
        base_path=settings.base_path,
        store=None,
        configs=lambda: configs,
        max_body_bytes=settings.max_body_bytes,
    )


def create_hub_app(config: HubConfig, settings: Settings | None = None, store=None) -> FastAPI:
    """The hub app: the federation (federated mode) or a FHIR server over `store` fed by the puller
    (central mode), plus /hub/nodes."""
    settings = settings or Settings()
    puller_task: list[asyncio.Task] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.federation = Federation(config)
        if config.mode == "central" and store is not None and app.state.pull:
            from fhir_server.hub.central import pull_forever

            puller_task.append(asyncio.create_task(pull_forever(store, app.state.federation, config)))
        try:
            yield
        finally:
            for task in puller_task:
                task.cancel()
            await asyncio.gather(*puller_task, return_exceptions=True)
            await app.state.federation.close()

    if config.mode == "central":
        from fhir_server.api.app import create_app

        app = create_app(settings, store)
        app.router.lifespan_context = lifespan
    else:
        app = FastAPI(title="Lienthong hub", lifespan=lifespan)
        app.include_router(federation_router(config, settings.base_path))
        _gate(app, settings)

        @app.exception_handler(FhirError)
        async def _fhir_error(_request: Request, exc: FhirError) -> Response:
            return _json(exc.outcome, exc.status)

        @app.exception_handler(Exception)
        async def _unexpected(_request: Request, exc: Exception) -> Response:
            log.error("hub request failed: %s", type(exc).__name__)
            return _json(
                operation_outcome("fatal", "exception", f"Internal error ({type(exc).__name__})"), 500
            )

    app.state.pull = True

    @app.get("/hub/nodes", include_in_schema=False)
    async def nodes(request: Request) -> Response:
        return _json(await request.app.state.federation.status())

    return app
