"""The catalogue as FHIR Measure resources, and MeasureReports (summary + stratified) built from summaries."""

from __future__ import annotations

import datetime as dt

from fhir_server.reports import summary

MEASURE_BASE = "http://lienthong.vn/fhir/Measure/"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
SUPPRESSED_EXT = "http://lienthong.vn/fhir/StructureDefinition/suppressed-small-cell"
STRATIFIER_SYSTEM = "http://lienthong.vn/fhir/CodeSystem/report-stratifier"
_COLUMN_NAMES = {v: k for k, v in summary.STRATIFIERS.items() if k != "province"}
# scored as a proportion: kept / (kept + missed); appointments whose window is still open are excluded
PROPORTION = "reexam-appointments"


def measure_resource(m: summary.MeasureDef) -> dict:
    """The Measure resource of one catalogue entry (id = catalogue id)."""
    scoring = {"cohort": "cohort", "continuous-variable": "continuous-variable"}[m.scoring]
    populations = [("initial-population", m.sql)]
    if m.id == PROPORTION:
        scoring = "proportion"
        populations += [
            ("denominator", "reexam_kept + reexam_missed"),
            ("denominator-exclusion", "reexam_pending"),
            ("numerator", "reexam_kept"),
        ]
    return {
        "resourceType": "Measure",
        "id": m.id,
        "url": MEASURE_BASE + m.id,
        "name": m.id.replace("-", "_"),
        "title": m.title_vi,
        "subtitle": m.title_en,
        "status": "active",
        "publisher": "Lienthong",
        "description": f"{m.title_vi} ({m.title_en}), from the visit facts of the server's Encounters.",
        "scoring": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": scoring}]
        },
        "group": [
            {
                "population": [
                    {
                        "code": {"coding": [{"system": POPULATION, "code": code}]},
                        "criteria": {"language": "text/plain", "expression": expression},
                    }
                    for code, expression in populations
                ],
                "stratifier": [
                    {"code": _code([col]), "criteria": {"language": "text/plain", "expression": col}}
                    for col in (summary.STRATIFIERS[s] for s in summary.default_stratifiers(m))
                ],
            }
        ],
    }


def _code(cols: list[str]) -> dict:
    """CodeableConcept naming a stratifier ('province-new+month')."""
    name = "+".join(_COLUMN_NAMES.get(c, c) for c in cols)
    return {"coding": [{"system": STRATIFIER_SYSTEM, "code": name}], "text": name}


def _population(
    value, m: summary.MeasureDef, row: dict | None = None, code: str = "initial-population"
) -> dict:
    """A MeasureReport population (count, or the withheld marker)."""
    pop: dict = {"code": {"coding": [{"system": POPULATION, "code": code}]}}
    count = row.get("denominator") if row is not None and m.scoring == "continuous-variable" else value
    if count is summary.SUPPRESSED:
        pop["extension"] = [{"url": SUPPRESSED_EXT, "valueBoolean": True}]
    else:
        pop["count"] = count
    return pop


def _reexam_parts(
    repo, cols: list[str], period, min_cell: int, filters: dict | None = None
) -> dict[tuple, dict[str, int | None]]:
    """Kept / missed / pending (suppressed) per combination of `cols`."""
    out: dict[tuple, dict[str, int | None]] = {}
    for part in ("reexam-kept", "reexam-missed", "reexam-pending"):
        for r in summary.summarize(repo, summary.CATALOG[part], cols, period, filters, min_cell):
            out.setdefault(tuple(r[c] for c in cols), {})[part] = r["value"]
    return out


def _proportion(parts: dict[str, int | None]) -> tuple[list[dict], dict | None]:
    """Denominator, exclusion and numerator populations and the score of one (stratum) cell.

    The denominator is withheld when either of its parts is: publishing it would give the withheld part
    away by subtraction."""
    kept, missed = parts.get("reexam-kept", 0), parts.get("reexam-missed", 0)
    pending = parts.get("reexam-pending", 0)
    denominator = None if kept is summary.SUPPRESSED or missed is summary.SUPPRESSED else kept + missed
    m = summary.CATALOG[PROPORTION]
    pops = [
        _population(denominator, m, None, "denominator"),
        _population(pending, m, None, "denominator-exclusion"),
        _population(kept, m, None, "numerator"),
    ]
    score = None
    if denominator and kept is not summary.SUPPRESSED:
        score = {"value": round(kept / denominator, 4)}
    return pops, score


def measure_report(
    repo,
    m: summary.MeasureDef,
    stratifiers: list[list[str]],
    period: tuple[str | None, str | None],
    min_cell: int,
    top: int | None = None,
    filters: dict | None = None,
) -> dict:
    """A summary MeasureReport: the whole population, then one stratifier per requested grouping
    (`filters`: facts column -> value, e.g. one province)."""
    total = summary.summarize(repo, m, [], period, filters, min_cell)
    group: dict = {}
    if total:
        t = total[0]
        group["population"] = [_population(t["value"], m, t)]
        if m.scoring == "continuous-variable" and t["value"] is not None:
            group["measureScore"] = {"value": t["value"], "unit": "d"}
    else:
        group["population"] = [_population(0, m)]
    if m.id == PROPORTION:
        pops, score = _proportion(_reexam_parts(repo, [], period, min_cell, filters).get((), {}))
        group["population"] += pops
        if score:
            group["measureScore"] = score
    strats = []
    for cols in stratifiers:
        rows = summary.summarize(repo, m, cols, period, filters, min_cell, top)
        parts = _reexam_parts(repo, cols, period, min_cell, filters) if m.id == PROPORTION else {}
        strata = []
        for r in rows:
            values = [r[c] for c in cols]
            stratum: dict = {}
            label = "|".join("" if v is None else str(v) for v in values)
            if len(cols) == 1:
                stratum["value"] = {"text": label}
            else:
                stratum["component"] = [
                    {"code": _code([c]), "value": {"text": "" if v is None else str(v)}}
                    for c, v in zip(cols, values)
                ]
            stratum["population"] = [_population(r["value"], m, r)]
            if m.scoring == "continuous-variable" and r["value"] is not None:
                stratum["measureScore"] = {"value": r["value"], "unit": "d"}
            if m.id == PROPORTION:
                pops, score = _proportion(parts.get(tuple(values), {}))
                stratum["population"] += pops
                if score:
                    stratum["measureScore"] = score
            strata.append(stratum)
        strats.append({"code": [_code(cols)], "stratum": strata})
    if strats:
        group["stratifier"] = strats
    start, end = period
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_BASE + m.id,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "period": {"start": start or "1900-01-01", "end": end or dt.date.today().isoformat()},
        "group": [group],
    }
