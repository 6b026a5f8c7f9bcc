"""System-level endpoints: transaction/batch at the base, and the CapabilityStatement."""

from __future__ import annotations

from functools import lru_cache

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import AppContext, Ctx, Store, get_settings
from fhir_server.api.responses import base_url, check_accept, fhir_json
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.interactions.bundles import process_bundle
from fhir_server.search.registry import get_registry
from fhir_server.validation import r4_resource_types

router = APIRouter()

_TYPE_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


@router.post("")
@router.post("/")
async def transaction_or_batch(request: Request, store: Store) -> Response:
    """Process a transaction or batch Bundle posted to the base."""
    check_accept(request)
    bundle = await json_body(request)
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    limit = get_settings(request).max_bundle_entries
    if isinstance(entries, list) and len(entries) > limit:
        # Refused before any work: 100,000 GET entries took 85 s (issue 12).
        raise FhirError.bad_request(
            msg("Bundle has {count} entries; at most {limit} are allowed", count=len(entries), limit=limit),
            code="too-costly",
            expression="Bundle.entry",
        )
    representation = "return=representation" in request.headers.get("prefer", "")
    policy = get_settings(request).referential_integrity
    result = await run_in_threadpool(
        lambda: process_bundle(
            store, bundle, representation, True, base_url(request), integrity_policy=policy
        )
    )
    return fhir_json(result)


@router.get("/metadata")
async def metadata(request: Request, ctx: Ctx) -> Response:
    """The CapabilityStatement: exactly what this server implements."""
    check_accept(request)
    if ctx.capability is None:
        ctx.capability = orjson.dumps(capability_statement(ctx, base_url(request)))
    return fhir_json(ctx.capability)


def capability_statement(ctx: AppContext, base: str | None = None) -> dict:
    """Build the CapabilityStatement from the search parameter registry and the mounted operations."""
    search = get_registry()
    operations = ctx.operations
    resources = []
    for res_type in sorted(r4_resource_types()):
        entry = {
            "type": res_type,
            "interaction": [{"code": c} for c in _TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchParam": [
                {k: v for k, v in p.items() if k in ("name", "definition", "type", "documentation")}
                for p in search.capability(res_type)
            ],
        }
        ops = [o for o in operations if o.get("type") in (None, res_type) and o.get("level") != "system"]
        if ops:
            entry["operation"] = [{"name": o["name"], "definition": o["definition"]} for o in ops]
        resources.append(entry)
    rest: dict = {
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": c} for c in ("transaction", "batch", "history-system", "search-system")],
    }
    security = _security(ctx.settings, base)
    if security:
        rest["security"] = security
    system_ops = [o for o in operations if o.get("level") == "system"]
    if system_ops:
        rest["operation"] = [{"name": o["name"], "definition": o["definition"]} for o in system_ops]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _build_date(),
        "publisher": "Lienthong",
        "kind": "instance",
        "software": {"name": "Lienthong", "version": _version()},
        "implementation": {"description": "Lienthong FHIR server for Vietnamese hospital interoperability"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
        "patchFormat": [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/fhir+json",
        ],
        "rest": [rest],
    }


def _security(settings, base: str | None) -> dict | None:
    """rest.security: SMART-on-FHIR with the OAuth endpoints (issue 13), when access control is on."""
    if settings.auth_mode == "off":
        return None
    out: dict = {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": "SMART Backend Services (client_credentials, private_key_jwt) and SMART App Launch "
        "(authorization code + PKCE); see docs/security.md",
    }
    if settings.auth_mode == "smart" and base:
        root = base[: -len(settings.base_path)] if base.endswith(settings.base_path) else base
        out["extension"] = [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "token", "valueUri": f"{root}/auth/token"},
                    {"url": "authorize", "valueUri": f"{root}/auth/authorize"},
                    {"url": "revoke", "valueUri": f"{root}/auth/revoke"},
                ],
            }
        ]
    return out


@lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lienthong")
    except PackageNotFoundError:
        return "0+unknown"


def _build_date() -> str:
    from datetime import date

    return date.today().isoformat()
