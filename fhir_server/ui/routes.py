"""HTTP routes of the clinician view: /ui (patient search) and /ui/patient/{id} (cross-hospital timeline).

Server-rendered with Jinja2 (autoescaping on: every value from a resource is escaped). Pages hold
patient data, so they are sent with no-store caching and a strict Content-Security-Policy, and
nothing about the patient is logged.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings, get_store
from fhir_server.errors import FhirError
from fhir_server.ui.pages import templates
from fhir_server.ui.search import find_patients
from fhir_server.ui.view import patient_view, timeline_filters

router = APIRouter(include_in_schema=False)

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def render(name: str, status: int = 200, **context) -> HTMLResponse:
    """Render a template into an HTML response with the privacy headers."""
    return HTMLResponse(
        templates().get_template(name).render(**context), status_code=status, headers=_HEADERS
    )


_RENDERED_MAX = 16  # HTML variants kept per cached record (filters, print view)


def render_view(name: str, view: dict, **context) -> HTMLResponse:
    """Render a patient page, reusing the HTML already made from the same cached record and request."""
    rendered = view.get("rendered")
    key: tuple | None = (name, view.get("render_key"), tuple(sorted(context.items())))
    try:
        hash(key)
    except TypeError:  # a context value that cannot be a key (never cached, never wrong)
        key = None
    html = rendered.get(key) if rendered is not None and key is not None else None
    if html is None:
        html = templates().get_template(name).render(v=view, **context)
        if rendered is not None and key is not None:
            if len(rendered) >= _RENDERED_MAX:
                rendered.clear()
            rendered[key] = html
    return HTMLResponse(html, headers=_HEADERS)


@router.get("/ui")
async def search_page(request: Request, q: str = "") -> HTMLResponse:
    """Search form and results."""
    q = q.strip()[:200]
    results, more = await run_in_threadpool(find_patients, get_store(request), q) if q else ([], False)
    return render("search.html", query=q, results=results, more=more)


@router.get("/ui/patient/{patient_id}")
async def patient_page(
    request: Request,
    patient_id: str,
    hospital: str = "",
    type: str = "",
    since: str = "",
    until: str = "",
    print: str = "",
    all: str = "",
) -> HTMLResponse:
    """One patient's records from every linked hospital on one timeline (filters: hospital, type, period)."""
    filters = timeline_filters(hospital=hospital, type=type, since=since, until=until, all=all)
    settings = get_settings(request)
    try:
        view = await run_in_threadpool(
            partial(patient_view, cache_size=settings.ui_view_cache),
            get_store(request),
            patient_id,
            settings.icd10_path,
            filters,
        )
    except FhirError as exc:
        if exc.status in (404, 410):
            return render(
                "error.html",
                status=exc.status,
                query="",
                message="Không tìm thấy bệnh nhân này (hồ sơ không tồn tại hoặc đã bị xoá).",
            )
        raise
    return render_view("print.html" if print else "patient.html", view, query="")
