"""Measure/[id]/$evaluate-measure: health-department summaries as MeasureReport, CSV or XLSX.

The measures are Lienthong's catalogue (reports/summary.py; `lienthong report measures` stores the Measure
resources). Parameters: periodStart, periodEnd (FHIR dates), reportType=summary, and two of our own:
`stratifier` (comma-separated; '+' joins components, e.g. `province-new+month,icd-chapter`), `top` (the N
largest strata, e.g. top diagnoses), `province` (a post-2025 province code: only visits of residents of
that province; a health-department token is held to its own, see fhir_server/auth/province.py) and `_format`
(`csv` or `xlsx` for a download of the first stratifier as a table). Counts below the minimum cell size
(LIENTHONG_REPORT_MIN_CELL, default 5) are withheld everywhere.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import Config, Store
from fhir_server.api.responses import fhir_json
from fhir_server.auth.province import effective_province, province_filter
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.operations.registry import Operation
from fhir_server.reports import summary
from fhir_server.reports.measures import measure_report

router = APIRouter()
OPERATION = Operation(
    "evaluate-measure", "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure", router, "Measure"
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(value: str | None, name: str, end: bool) -> str | None:
    """A FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) as the first/last day it covers, or a 400."""
    if not value:
        return None
    try:
        if len(value) == 4:
            return f"{value}-12-31" if end else f"{value}-01-01"
        if len(value) == 7:
            first = dt.date.fromisoformat(f"{value}-01")
            if not end:
                return first.isoformat()
            nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            return (nxt - dt.timedelta(days=1)).isoformat()
        return dt.date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise FhirError.bad_request(
            msg("{name} must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not {value!r}", name=name, value=value)
        ) from None


@router.api_route("/Measure/{measure_id}/$evaluate-measure", methods=["GET", "POST"])
async def evaluate_measure(measure_id: str, request: Request, store: Store, settings: Config) -> Response:
    """Evaluate one catalogue measure over the visit facts."""
    q = request.query_params
    m = summary.measure(measure_id)
    report_type = q.get("reportType") or "summary"
    if report_type != "summary":
        raise FhirError.bad_request(
            msg("only reportType=summary is supported, not {value}", value=report_type)
        )
    start = _day(q.get("periodStart"), "periodStart", end=False)
    end = _day(q.get("periodEnd"), "periodEnd", end=True)
    if start and end and start > end:
        raise FhirError.bad_request(msg("periodStart is after periodEnd"))
    stratifiers = summary.parse_stratifiers(q.get("stratifier") or ",".join(summary.default_stratifiers(m)))
    fmt = (q.get("_format") or "").lower()
    top_text = q.get("top")
    if top_text is not None and not (top_text.isdigit() and int(top_text) > 0):
        raise FhirError.bad_request(msg("top must be a positive integer, not {value}", value=top_text))
    top = int(top_text) if top_text else None
    province = effective_province(getattr(request.state, "principal", None), q.get("province"))
    where = province_filter(province) or None
    repo = store.reports  # type: ignore[attr-defined]
    min_cell = settings.report_min_cell
    if fmt in ("csv", "text/csv", "xlsx", XLSX):
        dims = stratifiers[0] if stratifiers else []
        rows = await run_in_threadpool(summary.summarize, repo, m, dims, (start, end), where, min_cell, top)
        columns = [*dims, "value"] + (["denominator"] if m.scoring == "continuous-variable" else [])
        name = f"{m.id}_{'-'.join(dims) or 'total'}" + (f"_{province}" if province else "")
        if fmt in ("csv", "text/csv"):
            body = summary.to_csv(rows, columns, min_cell)
            return Response(
                body.encode("utf-8"),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        data = await run_in_threadpool(summary.to_xlsx, rows, columns, m.id)
        return Response(
            data, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'}
        )
    if fmt and fmt not in ("json", "application/fhir+json", "application/json"):
        raise FhirError.bad_request(msg("_format must be json, csv or xlsx, not {value}", value=fmt))
    report = await run_in_threadpool(measure_report, repo, m, stratifiers, (start, end), min_cell, top, where)
    return fhir_json(report)
