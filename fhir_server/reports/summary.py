"""Summaries over the visit facts: the catalogue of measures, grouping, small-cell suppression, tables.

Everything published (MeasureReport, CSV, XLSX, CLI, web page) goes through `summarize`, which suppresses
every count below the configured minimum (default 5, LIENTHONG_REPORT_MIN_CELL) and every figure derived
from such a count (average length of stay), so a small cell cannot identify a patient; then complementary
suppression (reports/suppression.py) so no withheld cell is recovered from the published totals.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.reports.suppression import complement

SUPPRESSED = None  # a suppressed cell: no number published


@dataclass(frozen=True)
class MeasureDef:
    """One published indicator: the facts column it sums (or the average it computes), its names."""

    id: str
    title_vi: str
    title_en: str
    sql: str  # a measure of storage's report repository
    scoring: str = "cohort"  # cohort | continuous-variable
    filters: tuple[tuple[str, str], ...] = ()
    source: str = "visit"  # visit: one row per Encounter; reexam: one row per re-exam Appointment


CATALOG: dict[str, MeasureDef] = {
    m.id: m
    for m in (
        MeasureDef("visits", "Lượt khám chữa bệnh", "Visits", "visits"),
        MeasureDef(
            "outpatient-visits",
            "Lượt khám ngoại trú",
            "Outpatient visits",
            "visits",
            filters=(("visit_class", "outpatient"),),
        ),
        MeasureDef("admissions", "Lượt điều trị nội trú", "Admissions", "admissions"),
        MeasureDef("discharges", "Lượt ra viện", "Discharges", "discharges"),
        MeasureDef("referrals-in", "Lượt chuyển tuyến đến", "Referrals in", "referrals_in"),
        MeasureDef("referrals-out", "Lượt chuyển tuyến đi", "Referrals out", "referrals_out"),
        MeasureDef(
            "notifiable-cases",
            "Ca bệnh truyền nhiễm phải báo cáo",
            "Notifiable-disease cases",
            "notifiable_cases",
        ),
        MeasureDef(
            "average-length-of-stay",
            "Số ngày điều trị nội trú trung bình",
            "Average length of stay (days)",
            "bed_days",
            scoring="continuous-variable",
        ),
        MeasureDef(
            "reexam-appointments", "Lượt hẹn tái khám", "Re-exam appointments", "reexams", source="reexam"
        ),
        MeasureDef(
            "reexam-kept",
            "Hẹn tái khám đã đến khám",
            "Re-exam appointments kept",
            "reexam_kept",
            source="reexam",
        ),
        MeasureDef(
            "reexam-missed",
            "Hẹn tái khám bỏ lỡ",
            "Re-exam appointments missed",
            "reexam_missed",
            source="reexam",
        ),
        MeasureDef(
            "reexam-pending",
            "Hẹn tái khám chưa hết hạn",
            "Re-exam appointments pending",
            "reexam_pending",
            source="reexam",
        ),
    )
}
# the columns a re-exam row has (no diagnosis, visit class or outcome: an appointment is not a visit)
REEXAM_COLUMNS = (
    "facility",
    "province_old",
    "province_new",
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "age_band",
    "sex",
    "bhyt",
)
REEXAM_STRATIFIERS = ("province-new", "month", "age-band", "sex", "bhyt")
# Vietnam has one time zone and no DST: the local date decides whether a re-exam window has closed
VN_TZ = dt.timezone(dt.timedelta(hours=7))

# stratifier name -> facts column; "province" picks old or new boundaries per report
STRATIFIERS = {
    "facility": "facility",
    "province-old": "province_old",
    "province-new": "province_new",
    "province": "province_new",
    "day": "day",
    "week": "week",
    "month": "month",
    "quarter": "quarter",
    "year": "year",
    "class": "visit_class",
    "outcome": "outcome",
    "destination": "destination",
    "icd-chapter": "icd_chapter",
    "icd-block": "icd_block",
    "icd-code": "icd_code",
    "age-band": "age_band",
    "sex": "sex",
    "bhyt": "bhyt",
    "notifiable-disease": "notifiable",
}
DEFAULT_STRATIFIERS = ("province-new", "month", "class", "icd-chapter", "age-band", "sex", "bhyt")


def measure(measure_id: str) -> MeasureDef:
    """The catalogue entry, or a 404 OperationOutcome."""
    found = CATALOG.get(measure_id)
    if found is None:
        raise FhirError.not_found(msg("Measure/{id} is not a Lienthong summary", id=measure_id))
    return found


def parse_stratifiers(value: str | None) -> list[list[str]]:
    """'province-new+month,icd-chapter' -> [['province_new','month'], ['icd_chapter']] (400 on an unknown name)."""
    names = [s.strip() for s in (value or "").split(",") if s.strip()]
    out = []
    for name in names:
        parts = [p.strip() for p in name.split("+") if p.strip()]
        unknown = [p for p in parts if p not in STRATIFIERS]
        if unknown:
            raise FhirError.bad_request(
                msg(
                    "unknown stratifier {name}; known: {known}",
                    name=unknown[0],
                    known=", ".join(sorted(STRATIFIERS)),
                )
            )
        out.append([STRATIFIERS[p] for p in parts])
    return out


def default_stratifiers(m: MeasureDef) -> tuple[str, ...]:
    """The stratifiers a report of this measure gets when none are asked for."""
    return REEXAM_STRATIFIERS if m.source == "reexam" else DEFAULT_STRATIFIERS


def check_dims(m: MeasureDef, dims: list[str]) -> None:
    """400 when a stratifier does not apply to the measure (re-exam rows have no diagnosis, class…)."""
    if m.source != "reexam":
        return
    for col in dims:
        if col not in REEXAM_COLUMNS:
            name = next((k for k, v in STRATIFIERS.items() if v == col), col)
            raise FhirError.bad_request(
                msg("stratifier {name} does not apply to measure {measure}", name=name, measure=m.id)
            )


def local_today() -> str:
    """Today's date in Vietnam (ISO)."""
    return dt.datetime.now(VN_TZ).date().isoformat()


def _suppress(value: int | None, min_cell: int) -> int | None:
    """A count as published: counts 1..min_cell-1 are withheld."""
    if value is None:
        return 0
    value = int(value)
    return SUPPRESSED if 0 < value < min_cell else value


def summarize(
    repo,
    m: MeasureDef,
    dims: list[str],
    period: tuple[str | None, str | None] = (None, None),
    filters: dict | None = None,
    min_cell: int = 5,
    top: int | None = None,
) -> list[dict]:
    """Rows of `dims` + 'value' (+ 'denominator' for averages), suppressed; `top` keeps the largest."""
    where = dict(m.filters) | (filters or {})
    check_dims(m, dims + list(where))
    if m.scoring == "continuous-variable":
        rows = repo.aggregate(dims, ["bed_days", "los_count"], where, period)
        out = []
        for r in rows:
            n = int(r["los_count"] or 0)
            if n == 0:
                continue
            shown = _suppress(n, min_cell)
            avg = None if shown is SUPPRESSED else round(float(r["bed_days"] or 0) / n, 2)
            out.append({**{d: r[d] for d in dims}, "value": avg, "denominator": shown})
        return complement(out, dims)
    rows = repo.aggregate(
        dims,
        [m.sql],
        where,
        period,
        order_by=m.sql if top else None,
        limit=top,
        source=m.source,
        today=local_today(),
    )
    out = [{**{d: r[d] for d in dims}, "value": _suppress(r[m.sql], min_cell)} for r in rows if r[m.sql]]
    # Totals are published alongside (population, margins): one withheld cell per line is not enough.
    return complement(out, dims)


def to_csv(rows: list[dict], columns: list[str], min_cell: int) -> str:
    """CSV text (UTF-8 with BOM for spreadsheet programs); a withheld count reads '<N'."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow(columns)
    withheld = f"<{min_cell}"
    for r in rows:
        cells = []
        for c in columns:
            value = r.get(c)
            suppressed = value is None and (c == "denominator" or (c == "value" and "denominator" not in r))
            cells.append(withheld if suppressed else ("" if value is None else value))
        writer.writerow(cells)
    return buf.getvalue()


def to_xlsx(rows: list[dict], columns: list[str], title: str) -> bytes:
    """An XLSX workbook with one sheet (openpyxl); suppressed cells are empty."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(columns)
    for r in rows:
        ws.append([r.get(c) for c in columns])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
