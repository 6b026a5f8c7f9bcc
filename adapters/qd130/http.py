"""`POST /qd130/$check`: the agency-style check of one uploaded QĐ130 file (no data is stored).

An ingest-side endpoint, mounted beside /fhir by the composition root (not a FHIR operation). The body
is the file as exported (envelope, base64-wrapped envelope or bare table). Answers 200 with the report
whenever the file could be examined (its findings may include errors): JSON by default, CSV with
`_format=csv` or `Accept: text/csv`. Messages follow `Accept-Language` (vi/en, English when absent) or
`?lang=vi|en`; `?name=` names the file in the report.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import read_bounded
from fhir_server.i18n import accept_language, normalize

from .check import check_bytes
from .check_report import exit_code, to_csv

router = APIRouter(tags=["qd130"])


def _wants_csv(request: Request) -> bool:
    """CSV when asked by _format or Accept."""
    fmt = (request.query_params.get("_format") or "").lower()
    if fmt:
        return fmt in ("csv", "text/csv")
    return "text/csv" in (request.headers.get("accept") or "").lower()


@router.post("/qd130/$check")
async def check_file(request: Request) -> Response:
    """Check one QĐ130 file against the agency-style rules; nothing is stored."""
    payload = await read_bounded(request)
    lang = normalize(request.query_params.get("lang")) or accept_language(
        request.headers.get("accept-language")
    )
    name = (request.query_params.get("name") or "upload.xml")[:255]
    report = await run_in_threadpool(check_bytes, payload, name, lang)
    headers = {"Content-Language": lang, "X-Check-Exit-Code": str(exit_code([report]))}
    if _wants_csv(request):
        return Response(to_csv([report], lang), media_type="text/csv; charset=utf-8", headers=headers)
    doc = report.as_dict(lang)
    doc["exit_code"] = exit_code([report])
    body = json.dumps(doc, ensure_ascii=False).encode()
    return Response(body, media_type="application/json", headers=headers)
