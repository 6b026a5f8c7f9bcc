"""/ui/reports: the health-department page — visits by province (old or new boundaries) as a bar chart and a
monthly trend for each of the top diagnoses, drawn on the server as SVG (no script, no CDN: the page's
Content-Security-Policy forbids both). Every figure is suppressed as in the API (counts < 5 withheld).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings, get_store
from fhir_server.auth.province import effective_province, province_filter
from fhir_server.reports import summary
from fhir_server.ui.routes import render
from mappings import admin_units

router = APIRouter(include_in_schema=False)
BAR = "#0b5cad"
WITHHELD = "#c9d1db"


@dataclass
class Bar:
    """One bar: its label, value (None = withheld) and tooltip."""

    label: str
    value: float | None
    note: str = ""


def bar_chart(bars: list[Bar], min_cell: int, width: int = 720) -> Markup:
    """Horizontal bar chart as inline SVG; withheld values get a grey stub marked '<N'."""
    row, left, right = 22, 190, 70
    height = row * len(bars) + 10
    top = max((b.value or 0 for b in bars), default=0) or 1
    scale = (width - left - right) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="12" font-family="system-ui, sans-serif">'
    ]
    for i, b in enumerate(bars):
        y = 5 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(b.label)}</text>')
        if b.value is None:
            parts.append(f'<rect x="{left}" y="{y + 3}" width="14" height="14" fill="{WITHHELD}"/>')
            parts.append(f'<text x="{left + 20}" y="{y + 14}">&lt;{min_cell}</text>')
            continue
        w = max(1.0, b.value * scale)
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="14" fill="{BAR}">'
            f"<title>{escape(b.note or b.label)}: {b.value:g}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 5:.1f}" y="{y + 14}">{b.value:g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(points: list[Bar], min_cell: int, width: int = 360, height: int = 120) -> Markup:
    """Small column chart of a monthly series as inline SVG (withheld months drawn as grey stubs)."""
    n = max(1, len(points))
    step = (width - 20) / n
    top = max((p.value or 0 for p in points), default=0) or 1
    scale = (height - 34) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="10" font-family="system-ui, sans-serif">',
        f'<line x1="10" y1="{height - 18}" x2="{width - 10}" y2="{height - 18}" stroke="#99a3ae"/>',
    ]
    for i, p in enumerate(points):
        x = 10 + i * step
        base = height - 18
        if p.value is None:
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{base - 4}" width="{max(2, step - 4):.1f}" height="4" fill="{WITHHELD}">'
                f"<title>{escape(p.label)}: &lt;{min_cell}</title></rect>"
            )
        else:
            h = max(1.0, p.value * scale)
            w = max(2, step - 4)
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{base - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{BAR}">'
                f"<title>{escape(p.label)}: {p.value:g}</title></rect>"
            )
        if n <= 12 or i % max(1, n // 12) == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 5}" text-anchor="middle">{escape(p.label[2:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _province_name(code: str | None, era: admin_units.Era) -> str:
    """'79 · Thành phố Hồ Chí Minh' (or the bare code when unknown)."""
    if not code:
        return "(không rõ)"
    p = admin_units.province(code, era)
    return f"{code} · {p.short_name}" if p else code


def page_data(
    repo,
    measure_id: str,
    era: str,
    start: str | None,
    end: str | None,
    min_cell: int,
    province: str | None = None,
) -> dict:
    """Everything the page shows (computed off the event loop); `province` limits it to one province."""
    m = summary.measure(measure_id)
    where = province_filter(province)
    era_key: admin_units.Era = "old" if era == "old" else "new"
    column = "province_old" if era_key == "old" else "province_new"
    rows = summary.summarize(repo, m, [column], (start, end), where or None, min_cell)
    bars = [Bar(_province_name(r[column], era_key), r["value"]) for r in rows]
    top = summary.summarize(
        repo, summary.CATALOG["visits"], ["icd_code"], (start, end), where or None, min_cell, 5
    )
    trends = []
    for r in top:
        if not r["icd_code"]:
            continue
        series = summary.summarize(
            repo,
            summary.CATALOG["visits"],
            ["month"],
            (start, end),
            {**where, "icd_code": r["icd_code"]},
            min_cell,
        )
        points = [Bar(s["month"] or "", s["value"]) for s in series if s["month"]]
        trends.append({"code": r["icd_code"], "total": r["value"], "chart": column_chart(points, min_cell)})
    return {
        "measure": m,
        "measures": list(summary.CATALOG.values()),
        "era": era_key,
        "start": start or "",
        "end": end or "",
        "chart": bar_chart(bars, min_cell) if bars else None,
        "trends": trends,
        "min_cell": min_cell,
        "province": province or "",
    }


@router.get("/ui/reports")
async def reports_page(
    request: Request,
    measure: str = "visits",
    era: str = "new",
    start: str = "",
    end: str = "",
    province: str = "",
) -> HTMLResponse:
    """The summary page (a caller bound to a province sees only that province)."""
    if measure not in summary.CATALOG:
        measure = "visits"
    repo = get_store(request).reports  # type: ignore[attr-defined]
    min_cell = get_settings(request).report_min_cell
    bound = effective_province(getattr(request.state, "principal", None), province[:3] or None)
    data = await run_in_threadpool(
        page_data, repo, measure, era, start[:10] or None, end[:10] or None, min_cell, bound
    )
    return render("reports.html", **data)
