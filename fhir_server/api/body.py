"""Reading request bodies: bounded size, checked media type, JSON parsed with orjson."""

from __future__ import annotations

import orjson
from fastapi import Request

from fhir_server.api.deps import get_settings
from fhir_server.api.xml import from_xml
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.validation import json_depth_error, nul_path

JSON_MEDIA = ("application/fhir+json", "application/json", "application/json+fhir")
XML_MEDIA = ("application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir")
PATCH_MEDIA = ("application/json-patch+json", "application/merge-patch+json")


async def read_bounded(request: Request) -> bytes:
    """Read the body, refusing (413) anything over the configured limit without buffering it all."""
    limit = get_settings(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FhirError.make(
            413,
            "too-costly",
            msg("Request body of {size} bytes exceeds the limit of {limit}", size=declared, limit=limit),
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError.make(
                413, "too-costly", msg("Request body exceeds the limit of {limit} bytes", limit=limit)
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def check_media_type(request: Request, allowed: tuple[str, ...] = JSON_MEDIA) -> None:
    """415 unless Content-Type is one of the allowed JSON media types."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype not in allowed:
        raise FhirError.make(
            415,
            "not-supported",
            msg(
                "Unsupported Content-Type {ctype!r}; expected one of {allowed}",
                ctype=ctype or "(none)",
                allowed=", ".join(allowed),
            ),
        )


async def json_body(request: Request, allowed: tuple[str, ...] = JSON_MEDIA) -> object:
    """Media type check, size bound and JSON parse of a request body (400 on malformed JSON)."""
    xml = allowed == JSON_MEDIA and _media_type(request) in XML_MEDIA
    check_media_type(request, allowed + XML_MEDIA if xml else allowed)
    raw = await read_bounded(request)
    if not raw.strip():
        raise FhirError.bad_request(msg("Request body is empty"), code="required")
    if xml:
        return from_xml(raw)  # resources only: patches and Parameters of operations stay JSON
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError.bad_request(msg("Malformed JSON: {detail}", detail=str(exc)), code="structure")
    root = body.get("resourceType") if isinstance(body, dict) else None
    root = root if isinstance(root, str) and root.isalpha() else ""
    too_deep = json_depth_error(body, get_settings(request).max_json_depth, root)
    if too_deep is not None:
        raise too_deep
    # JSON can only carry NUL escaped; the byte search keeps the walk off the normal path.
    if b"\\u0000" in raw:
        where = nul_path(body, root)
        if where is not None:
            raise FhirError.bad_request(
                msg("{path} contains a NUL character", path=where), code="value", expression=where
            )
    return body
