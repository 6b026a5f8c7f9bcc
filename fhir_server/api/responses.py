"""Building FHIR HTTP responses: stored JSON bytes out as-is, headers from the stored version."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response

from fhir_server.api.deps import get_settings
from fhir_server.api.xml import SCOPE_KEY as XML_SCOPE_KEY
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.i18n import accept_language, msg
from fhir_server.storage.base import StoredResource
from fhir_server.timeutil import http_date

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_TYPES = (
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "json",
    "*/*",
    "application/*",
    "text/json",
)
_XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "xml", "application/xml+fhir")


def fhir_json(payload: dict | bytes, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response with the FHIR media type (dicts are serialized with orjson)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(content=body, status_code=status, media_type=FHIR_JSON, headers=headers)


def request_lang(request: Request) -> str:
    """The language the client reads (Accept-Language: vi or en; English when absent)."""
    return accept_language(request.headers.get("accept-language"))


def error_response(exc: FhirError, lang: str | None = None) -> Response:
    """The OperationOutcome of an error with its status code, its diagnostics in `lang` when translatable."""
    return fhir_json(exc.localized(lang), exc.status, exc.headers)


def base_url(request: Request) -> str:
    """The FHIR base URL as clients see it (LIENTHONG_PUBLIC_BASE_URL wins behind proxies)."""
    settings = get_settings(request)
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return str(request.base_url).rstrip("/") + settings.base_path


def version_headers(stored: StoredResource, base: str | None = None, location: bool = False) -> dict:
    """ETag, Last-Modified and (for writes) Location headers of one stored version."""
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)}
    if location:
        prefix = f"{base}/" if base else ""
        headers["Location"] = f"{prefix}{stored.res_type}/{stored.res_id}/_history/{stored.version}"
    return headers


def check_accept(request: Request) -> None:
    """Content negotiation: JSON (the default and fast path), or XML when `_format`/Accept asks for it
    (the response is converted by `api.xml.XmlMiddleware`); anything else gets 406."""
    fmt = request.query_params.get("_format") if request.url.query else None
    if fmt:
        wanted = fmt.lower()
        if any(wanted.startswith(x) for x in _XML_TYPES):
            request.scope[XML_SCOPE_KEY] = "xml"
            return
        if not any(wanted.startswith(x) for x in _JSON_TYPES):
            raise FhirError.make(
                406, "not-supported", msg("Unsupported _format {format!r}; use json", format=fmt)
            )
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for t in types:
        if t == "" or any(t.startswith(x) for x in _JSON_TYPES):
            return
        if any(t.startswith(x) for x in _XML_TYPES):
            request.scope[XML_SCOPE_KEY] = "xml"
            return
    raise FhirError.make(
        406,
        "not-supported",
        msg("Cannot produce {accept!r}; this server speaks application/fhir+json", accept=accept),
    )


def prefer_return(request: Request) -> str | None:
    """The `return` preference of a write (minimal | representation | OperationOutcome), or None."""
    for part in request.headers.get("prefer", "").split(","):
        for token in part.split(";"):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == "return" and value:
                return value.strip().strip('"')
    return None


def write_response(
    request: Request, stored: StoredResource | None, status: int, outcome: dict | None = None
) -> Response:
    """Answer a write honouring `Prefer: return=minimal|representation|OperationOutcome`."""
    prefer = prefer_return(request)
    headers = version_headers(stored, base_url(request), location=status == 201) if stored else {}
    if prefer == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer == "OperationOutcome":
        msg = outcome or operation_outcome(
            "information",
            "informational",
            f"{stored.res_type}/{stored.res_id} version {stored.version}" if stored else "ok",
        )
        return fhir_json(msg, status, headers)
    if stored is not None and stored.content is not None:
        return fhir_json(stored.content, status, headers)
    return fhir_json(outcome or operation_outcome("information", "informational", "ok"), status, headers)


def delete_response(request: Request, status: int, outcome: dict | None) -> Response:
    """Answer a delete: its OperationOutcome (200), or 204 with no body for `Prefer: return=minimal` and
    when nothing matched a conditional delete (R4 http.html#delete allows either form)."""
    prefer = prefer_return(request)
    if prefer == "OperationOutcome" and outcome is not None:
        return fhir_json(outcome, 200)
    if prefer == "minimal" or status == 204 or outcome is None:
        return Response(status_code=204)
    return fhir_json(outcome, 200)
