"""What a doctor reads first, as plain data: allergies, problems, current drugs, vital signs, labs, documents.

Pure functions over the parsed resources of $everything (grouped by type) and the page's `Hospitals`;
`view.patient_view` calls them. Labels and units come from `labels.yaml`; ICD-10 names from the code
list of `mappings.terminology` (LIENTHONG_ICD10_PATH); lab names and panels from its LOINC table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache

from fhir_server.search.values import date_range
from fhir_server.ui import labels as lb
from fhir_server.ui.charts import Point, Series, line_chart
from mappings import terminology

LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
_INACTIVE = {"inactive", "resolved", "remission"}
_FLAG_CODES = {
    "H": "H",
    "HH": "H",
    "HU": "H",
    ">": "H",
    "L": "L",
    "LL": "L",
    "LU": "L",
    "<": "L",
    "A": "A",
    "AA": "A",
}
_TAGS = re.compile(r"<[^>]+>")


def icd10_name(code: str, text: str, icd10_path: str | None) -> str:
    """Vietnamese name of an ICD-10 code: the loaded code list, else the resource's own text (not the bare code)."""
    entry = terminology.icd10(code, icd10_path) if code else None
    if entry and (entry.name_vi or entry.name_en):
        return entry.name_vi or entry.name_en
    return "" if text in ("", code) else text


def practitioner_name(res: dict | None) -> str:
    """Display name of a Practitioner (or PractitionerRole's display)."""
    if not isinstance(res, dict):
        return ""
    return lb.human_name(res)


def author_names(refs: list, by_ref: dict[str, dict]) -> str:
    """Names of the authors a resource references (Practitioner resources, else the reference display)."""
    names = []
    for r in refs:
        if not isinstance(r, dict):
            continue
        ref = r.get("reference", "")
        key = "/".join(ref.split("/")[-2:]) if isinstance(ref, str) else ""
        name = practitioner_name(by_ref.get(key)) or r.get("display", "")
        if name and name not in names:
            names.append(str(name))
    return ", ".join(names)


# ---------------------------------------------------------------- allergies


def allergies(items: list[dict], hospitals, unknown: str) -> list[dict]:
    """AllergyIntolerance records still in force (entered-in-error and refuted left out), most critical first."""
    vocab = lb.vocabulary()
    out = []
    for a in items:
        status = (
            lb.coding_code(
                a.get("clinicalStatus"), "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
            )
            or ""
        )
        verification = (
            lb.coding_code(
                a.get("verificationStatus"),
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            )
            or ""
        )
        if status in ("inactive", "resolved") or verification in ("refuted", "entered-in-error"):
            continue
        reactions = []
        for r in a.get("reaction") or []:
            reactions += [lb.concept_text(m) for m in r.get("manifestation") or [] if lb.concept_text(m)]
        when = a.get("recordedDate") or a.get("onsetDateTime") or ""
        out.append(
            {
                "substance": lb.concept_text(a.get("code")) or "(không rõ tác nhân)",
                "category": ", ".join(vocab["allergy_category"].get(c, c) for c in a.get("category") or []),
                "criticality": vocab["allergy_criticality"].get(a.get("criticality", ""), ""),
                "high": a.get("criticality") == "high",
                "kind": "Không dung nạp" if a.get("type") == "intolerance" else "Dị ứng",
                "reactions": ", ".join(reactions),
                "date": lb.fhir_date(when, False),
                "hospital": hospitals.of(a) or unknown,
            }
        )
    out.sort(key=lambda x: (not x["high"], x["substance"]))
    return out


# ---------------------------------------------------------------- problems and current drugs


def active_problems(conditions: list[dict], hospitals, unknown: str, icd10_path: str | None) -> list[dict]:
    """Distinct ICD-10 codes whose latest record is not resolved/inactive, newest first, with every hospital."""
    latest: dict[str, dict] = {}
    for c in conditions:
        code = lb.coding_code(c.get("code"), ICD10)
        if not code:
            continue
        clinical = (
            lb.coding_code(
                c.get("clinicalStatus"), "http://terminology.hl7.org/CodeSystem/condition-clinical"
            )
            or ""
        )
        verification = lb.coding_code(
            c.get("verificationStatus"), "http://terminology.hl7.org/CodeSystem/condition-ver-status"
        )
        if verification in ("refuted", "entered-in-error"):
            continue
        when = c.get("recordedDate") or c.get("onsetDateTime") or ""
        sort = lb.sort_key(when)
        entry = latest.setdefault(
            code,
            {
                "code": code,
                "name": "",
                "date": "",
                "sort": -1,
                "hospitals": [],
                "count": 0,
                "inactive": False,
            },
        )
        entry["count"] += 1
        entry["name"] = entry["name"] or icd10_name(code, lb.concept_text(c.get("code")), icd10_path)
        hospital = hospitals.of(c) or unknown
        if hospital not in entry["hospitals"]:
            entry["hospitals"].append(hospital)
        if sort >= entry["sort"]:
            entry.update(date=lb.fhir_date(when, False), sort=sort, inactive=clinical in _INACTIVE)
    return sorted((e for e in latest.values() if not e["inactive"]), key=lambda e: -e["sort"])


def current_medications(requests: list[dict], hospitals, unknown: str, drug) -> list[dict]:
    """The most recent prescription of each hospital (all its drugs), plus any still active one; newest first."""
    by_hospital: dict[str, list[dict]] = defaultdict(list)
    for m in requests:
        if m.get("status") in ("entered-in-error", "cancelled"):
            continue
        by_hospital[hospitals.of(m) or unknown].append(m)
    out = []
    for hospital, items in by_hospital.items():
        newest = max(lb.sort_key(m.get("authoredOn")) for m in items)
        day = newest // 86_400_000_000
        for m in items:
            recent = lb.sort_key(m.get("authoredOn")) // 86_400_000_000 == day
            if recent or m.get("status") == "active":
                item = drug(
                    m,
                    m.get("authoredOn"),
                    hospitals,
                    unknown,
                    (m.get("dispenseRequest") or {}).get("quantity"),
                )
                item["sort"] = lb.sort_key(m.get("authoredOn"))
                out.append(item)
    out.sort(key=lambda x: (-x["sort"], x["name"]))
    return out


def coverage_status(items: list[dict], today_us: int) -> dict | None:
    """The insurance card with the latest validity period: number, period, and whether it is valid today."""
    best = None
    for c in items:
        period = c.get("period") or {}
        end = period.get("end")
        key = lb.sort_key(end) if end else 2**62
        if best is None or key > best[0]:
            best = (key, c)
    if best is None:
        return None
    c = best[1]
    period = c.get("period") or {}
    start, end = period.get("start"), period.get("end")
    end_rng = period_end(end)
    valid = (not start or lb.sort_key(start) <= today_us) and (end_rng is None or today_us < end_rng)
    number = c.get("subscriberId") or next((i.get("value") for i in c.get("identifier") or []), "")
    return {
        "number": number or "",
        "start": lb.fhir_date(start, False),
        "end": lb.fhir_date(end, False),
        "valid": valid and c.get("status", "active") == "active",
    }


def period_end(end: str | None) -> int | None:
    """The exclusive end (microseconds) of a period end date: a card valid "to 31/12/2025" covers that whole day."""
    if not end:
        return None
    rng = date_range(end)
    return rng[1] if rng else None


# ---------------------------------------------------------------- vital signs


@cache
def _vital_codes() -> dict[str, tuple[str, str, str]]:
    return {code: tuple(v) for code, v in lb.vocabulary()["vital_signs"].items()}  # type: ignore[misc]


def vital_of(obs: dict) -> list[tuple[str, float, str]]:
    """(key, value, text) of the vital signs an Observation carries ([] when it is not one); BP yields sys and dia."""
    codes = _vital_codes()
    loinc = [c.get("code") for c in (obs.get("code") or {}).get("coding") or [] if c.get("system") == LOINC]
    spec = next((codes[c] for c in loinc if c in codes), None)
    if spec is None:
        return []
    key = spec[0]
    if key == "bp":
        parts: dict[str, float] = {}
        for comp in obs.get("component") or []:
            for c in (comp.get("code") or {}).get("coding") or []:
                sub = codes.get(c.get("code", ""))
                v = (comp.get("valueQuantity") or {}).get("value")
                if sub and isinstance(v, int | float):
                    parts[sub[0]] = float(v)
        return [(k, v, _num(v)) for k, v in parts.items()]
    value = (obs.get("valueQuantity") or {}).get("value")
    if not isinstance(value, int | float):
        return []
    return [(key, float(value), _num(value))]


def _num(v: float) -> str:
    return f"{v:g}"


def is_vital_category(obs: dict) -> bool:
    """True for an Observation in the vital-signs category (a known vital LOINC code is checked by vital_of)."""
    return any(
        c.get("code") == "vital-signs" for cc in obs.get("category") or [] for c in cc.get("coding") or []
    )


def vital_rows(observations: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """A compact grid of one encounter's vitals: one row per time, one column per sign (BP as sys/dia)."""
    codes = _vital_codes()
    rows: dict[int, dict] = {}
    present: set[str] = set()
    for o in observations:
        for key, value, text in o["vitals"]:
            row = rows.setdefault(o["sort"], {"date": o["date"], "sort": o["sort"], "values": {}})
            row["values"][key] = text
            present.add(key)
    for row in rows.values():
        vals = row["values"]
        if "sys" in vals or "dia" in vals:
            vals["bp"] = f"{vals.pop('sys', '?')}/{vals.pop('dia', '?')}"
            present.add("bp")
    present -= {"sys", "dia"}
    labels = {spec[0]: (spec[1], spec[2]) for spec in codes.values()}
    columns = [
        (k, f"{labels[k][0]} ({labels[k][1]})") for k in lb.vocabulary()["vital_order"] if k in present
    ]
    return sorted(rows.values(), key=lambda r: r["sort"]), columns


def latest_vitals(observations: list[dict]) -> list[dict]:
    """The last value of each vital sign across every visit and hospital, in the doctor's order."""
    codes = _vital_codes()
    labels = {spec[0]: (spec[1], spec[2]) for spec in codes.values()}
    last: dict[str, dict] = {}
    for o in observations:
        for key, _value, text in o["vitals"]:
            target = "bp" if key in ("sys", "dia") else key
            cur = last.get(target)
            if cur is None or o["sort"] > cur["sort"]:
                last[target] = cur = {
                    "sort": o["sort"],
                    "date": o["date"],
                    "hospital": o["hospital"],
                    "parts": {},
                }
            if o["sort"] == cur["sort"]:
                cur["parts"][key] = text
    out = []
    for key in lb.vocabulary()["vital_order"]:
        if key not in last:
            continue
        parts = last[key]["parts"]
        value = f"{parts.get('sys', '?')}/{parts.get('dia', '?')}" if key == "bp" else parts.get(key, "")
        out.append({"key": key, "label": labels[key][0], "unit": labels[key][1], "value": value, **last[key]})
    return out


def vital_charts(observations: list[dict], hospital_class: dict[str, str]) -> list[dict]:
    """SVG trend charts (BP sys/dia, pulse, temperature, SpO2, weight) over every visit, points by hospital."""
    series: dict[str, Series] = {}
    for o in observations:
        for key, value, text in o["vitals"]:
            s = series.setdefault(key, Series(key))
            s.points.append(
                Point(
                    o["sort"],
                    value,
                    hospital_class.get(o["hospital"], ""),
                    f"{o['date']}: {text} · {o['hospital']}",
                )
            )
    out = []
    for key, title in lb.vocabulary()["vital_charts"]:
        lines = [series[k] for k in (("sys", "dia") if key == "bp" else (key,)) if k in series]
        if sum(len(s.points) for s in lines) >= 2:
            out.append({"key": key, "title": title, "svg": line_chart(lines, title)})
    return out


# ---------------------------------------------------------------- labs


@cache
def _lab_by_loinc() -> dict[str, tuple[str, str]]:
    """LOINC code -> (panel group, Vietnamese name) from mappings/terminology/lab-loinc.csv (first row wins)."""
    out: dict[str, tuple[str, str]] = {}
    for t in terminology.lab_tests():
        out.setdefault(t.loinc_code, (t.group, t.vietnamese_name))
    return out


def lab_identity(obs: dict) -> tuple[str, str, str]:
    """(trend key, Vietnamese name, panel heading) of a lab Observation."""
    codings = (obs.get("code") or {}).get("coding") or []
    loinc = next((c.get("code") for c in codings if c.get("system") == LOINC and c.get("code")), None)
    group, vi_name = _lab_by_loinc().get(loinc or "", ("", ""))
    text = (obs.get("code") or {}).get("text")
    local = next((c.get("display") for c in codings if c.get("system") != LOINC and c.get("display")), None)
    name = text or vi_name or local or lb.concept_text(obs.get("code"))
    panel = lb.vocabulary()["lab_groups"].get(group) or lb.vocabulary()["lab_other"]
    key = f"loinc:{loinc}" if loinc else f"name:{lb.concept_text(obs.get('code')).casefold()}"
    return key, str(name), panel


def slug(key: str) -> str:
    """An HTML id fragment for a trend key ("loinc:2345-7" -> "loinc-2345-7")."""
    return re.sub(r"[^a-z0-9]+", "-", key.casefold()).strip("-")


def range_limits(obs: dict) -> tuple[float | None, float | None] | None:
    """Numeric (low, high) of the first referenceRange, or None when it has no number."""
    for rr in obs.get("referenceRange") or []:
        low = (rr.get("low") or {}).get("value")
        high = (rr.get("high") or {}).get("value")
        low = float(low) if isinstance(low, int | float) else None
        high = float(high) if isinstance(high, int | float) else None
        if low is not None or high is not None:
            return low, high
    return None


def lab_flag(obs: dict) -> str:
    """H / L / A from Observation.interpretation, else computed from a numeric value against referenceRange."""
    for i in obs.get("interpretation") or []:
        for c in i.get("coding") or []:
            if c.get("code") in _FLAG_CODES:
                return _FLAG_CODES[c["code"]]
            if c.get("code") == "N":
                return ""
    value = (obs.get("valueQuantity") or {}).get("value")
    if not isinstance(value, int | float):
        return ""
    for rr in obs.get("referenceRange") or []:
        low = (rr.get("low") or {}).get("value")
        high = (rr.get("high") or {}).get("value")
        if isinstance(high, int | float) and value > high:
            return "H"
        if isinstance(low, int | float) and value < low:
            return "L"
    return ""


def lab_panels(labs: list[dict]) -> list[dict]:
    """One encounter's lab results grouped by panel (Huyết học, Sinh hoá máu, ...), in time then name order."""
    panels: dict[str, list[dict]] = defaultdict(list)
    for o in labs:
        panels[o["panel"]].append(o)
    other = lb.vocabulary()["lab_other"]
    return [
        {"name": name, "items": sorted(items, key=lambda x: (x["sort"], x["name"]))}
        for name, items in sorted(panels.items(), key=lambda kv: (kv[0] == other, kv[0]))
    ]


def lab_trends(labs: list[dict], hospital_class: dict[str, str]) -> list[dict]:
    """For each test measured at least twice with a number: its points across visits and hospitals, and an SVG chart."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for o in labs:
        if o.get("number") is not None:
            by_key[o["key"]].append(o)
    out = []
    for key, items in by_key.items():
        if len(items) < 2:
            continue
        items.sort(key=lambda x: x["sort"])
        name, unit = items[-1]["name"], items[-1]["unit"]
        series = Series(
            name,
            [
                Point(
                    o["sort"],
                    o["number"],
                    hospital_class.get(o["hospital"], ""),
                    f"{o['date']}: {o['value']} {o['unit']} · {o['hospital']}",
                )
                for o in items
            ],
        )
        hospitals = sorted({o["hospital"] for o in items})
        out.append(
            {
                "key": key,
                "slug": slug(key),
                "name": name,
                "unit": unit,
                "points": items,
                "hospitals": hospitals,
                "svg": line_chart(
                    [series],
                    f"{name} ({unit})" if unit else name,
                    width=420,
                    height=150,
                    band=items[-1].get("limits"),  # the latest hospital's range
                ),
            }
        )
    out.sort(key=lambda t: (-len(t["hospitals"]), t["name"]))
    return out


# ---------------------------------------------------------------- documents


def _narrative(div: str | None) -> str:
    """Plain text of an XHTML narrative (tags dropped; the template escapes it again)."""
    return _TAGS.sub(" ", div or "").replace("&nbsp;", " ").strip()


def documents(by_type: dict[str, list[dict]], by_ref: dict[str, dict], hospitals, unknown: str) -> list[dict]:
    """Progress notes, case conferences, conclusions/advice, discharge and referral papers as readable items."""
    kinds = lb.vocabulary()["document_kinds"]
    out = []
    for ci in by_type.get("ClinicalImpression", []):
        when = ci.get("effectiveDateTime") or ci.get("date") or ""
        code = lb.concept_text(ci.get("code"))
        notes = [n.get("text", "") for n in ci.get("note") or [] if n.get("text")]
        base = {
            "date": lb.fhir_date(when),
            "sort": lb.sort_key(when),
            "author": author_names([ci.get("assessor")], by_ref),
            "hospital": hospitals.of(ci) or unknown,
            "encounter": _enc(ci),
        }
        if code:  # an episode conclusion: diagnosis at discharge, treatment, the doctor's advice
            lines = [t for t in (ci.get("description"), ci.get("summary"), *notes) if t]
            out.append({**base, "kind": kinds["conclusion"], "title": code, "lines": lines})
            continue
        conference = [n for n in notes if n.startswith("Hội chẩn")]
        other = [n for n in notes if n not in conference]
        if ci.get("description") or other:
            out.append(
                {
                    **base,
                    "kind": kinds["progress"],
                    "title": kinds["progress"],
                    "lines": [t for t in (ci.get("description"), *other) if t],
                }
            )
        for n in conference:
            out.append(
                {
                    **base,
                    "kind": kinds["conference"],
                    "title": kinds["conference"],
                    "lines": [n.split(":", 1)[-1].strip()],
                }
            )
    for comp in by_type.get("Composition", []):
        when = comp.get("date") or ""
        lines = [
            f"{s.get('title', '')}: {_narrative((s.get('text') or {}).get('div'))}".strip(": ")
            for s in comp.get("section") or []
        ]
        out.append(
            {
                "date": lb.fhir_date(when),
                "sort": lb.sort_key(when),
                "author": author_names(comp.get("author") or [], by_ref),
                "hospital": hospitals.of(comp) or unknown,
                "encounter": _enc(comp),
                "kind": kinds["document"],
                "title": comp.get("title") or lb.concept_text(comp.get("type")),
                "lines": [x for x in lines if x],
            }
        )
    for doc in by_type.get("DocumentReference", []):
        when = doc.get("date") or ((doc.get("context") or {}).get("period") or {}).get("start") or ""
        titles = [(c.get("attachment") or {}).get("title", "") for c in doc.get("content") or []]
        encs = (doc.get("context") or {}).get("encounter") or []
        out.append(
            {
                "date": lb.fhir_date(when),
                "sort": lb.sort_key(when),
                "author": author_names(doc.get("author") or [], by_ref),
                "hospital": hospitals.of(doc) or unknown,
                "encounter": _enc({"encounter": encs[0]}) if encs else "",
                "kind": kinds["document"],
                "title": lb.concept_text(doc.get("type")) or doc.get("description") or "Tài liệu",
                "lines": [t for t in [doc.get("description"), *titles] if t],
            }
        )
    out.sort(key=lambda d: d["sort"])
    return out


def _enc(res: dict) -> str:
    """Id of the Encounter a resource belongs to ('' when none)."""
    target = res.get("encounter") or res.get("context")
    ref = target.get("reference", "") if isinstance(target, dict) else ""
    return ref.split("/")[-1] if isinstance(ref, str) and "Encounter/" in ref else ""
