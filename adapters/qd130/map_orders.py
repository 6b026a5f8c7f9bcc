"""XML3 services/supplies, XML4 results, XML5 progress notes → FHIR clinical resources (XML2: map_drugs)."""

from __future__ import annotations

import re

from . import lab
from .context import Ctx
from .values import to_number

OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
_MONEY = (
    "DON_GIA",
    "DON_GIA_BV",
    "DON_GIA_BH",
    "THANH_TIEN_BV",
    "THANH_TIEN_BH",
    "T_TRANTT",
    "T_NGUONKHAC_NSNN",
    "T_NGUONKHAC_VTNN",
    "T_NGUONKHAC_VTTN",
    "T_NGUONKHAC_CL",
    "T_NGUONKHAC",
    "T_BNTT",
    "T_BNCCT",
    "T_BHTT",
)
_RATIO = ("TYLE_TT_BH", "TYLE_TT_DV", "MUC_HUONG")
_CODES = ("PHAM_VI", "MA_PTTT", "NGUON_CTRA", "TT_THAU", "MA_NHOM", "GOI_VTYT", "MA_GIUONG", "VET_THUONG_TP")
_CSST = re.compile(r"CSST<([^>]*)>")
_TOKEN = re.compile(r"^([A-Z]+)(.+)$")


def row_keys(rows: list[dict]) -> list[str]:
    """Stable row keys: STT when present and unique, else the 1-based position."""
    seen: set[str] = set()
    keys = []
    for pos, row in enumerate(rows, start=1):
        k = row.get("STT") or f"#{pos}"
        if k in seen:
            k = f"{k}#{pos}"
        seen.add(k)
        keys.append(k)
    return keys


def _num(ctx: Ctx, v: str | None):
    """Number or None (format errors were already reported by validation)."""
    if not v:
        return None
    try:
        return to_number(v, ctx.vendor)
    except ValueError:
        return None


def cost_extension(ctx: Ctx, row: dict) -> dict:
    """All payment fields of a row as one complex extension (money in VND, ratios in %)."""
    sub = []
    for f in _MONEY:
        n = _num(ctx, row.get(f))
        if n is not None:
            sub.append({"url": f, "valueMoney": ctx.money(n)})
    for f in _RATIO:
        n = _num(ctx, row.get(f))
        if n is not None:
            sub.append({"url": f, "valueDecimal": n})
    for f in _CODES:
        if row.get(f):
            sub.append({"url": f, "valueString": row[f]})
    return {"url": ctx.ext("cost"), "extension": sub}


def _charge(
    ctx: Ctx,
    table: str,
    key: str,
    row: dict,
    code: dict,
    total_field: str,
    service: list[dict] | None = None,
    product_ref: dict | None = None,
) -> dict:
    """ChargeItem for one billed row: code, quantity, total price and the payment split."""
    ci: dict = {
        "resourceType": "ChargeItem",
        "id": ctx.rid("ChargeItem", table, key),
        "extension": [cost_extension(ctx, row)],
        "status": "billable",
        "code": code,
        "subject": {"reference": ctx.patient_ref},
        "context": {"reference": ctx.encounter_ref},
    }
    when = ctx.dt(row.get("NGAY_TH_YL")) or ctx.dt(row.get("NGAY_YL"))
    if when:
        ci["occurrenceDateTime"] = when
    q = _num(ctx, row.get("SO_LUONG"))
    if q is not None:
        ci["quantity"] = {"value": q}
        if row.get("DON_VI_TINH"):
            ci["quantity"]["unit"] = row["DON_VI_TINH"]
    ci["performingOrganization"] = ctx.org()
    total = _num(ctx, row.get(total_field))
    if total is not None:
        ci["priceOverride"] = ctx.money(total)
    doc = ctx.practitioner(row.get("MA_BAC_SI"))
    if doc:
        ci["enterer"] = doc
    if service:
        ci["service"] = service
    if product_ref:
        ci["productReference"] = {"reference": product_ref["reference"]}
    return ctx.add(ci)


def map_services(ctx: Ctx, rows: list[dict]) -> dict[str, dict]:
    """XML3 row → ChargeItem, plus ServiceRequest (lab/imaging/functional) or Procedure by MA_NHOM.

    Returns ServiceRequest refs and row data by MA_DICH_VU so XML4 results can point at their order."""
    groups = ctx.code_map("ma_nhom")["codes"]
    by_service: dict[str, dict] = {}
    icd9 = ctx.fx["icd9cm"]
    for key, row in zip(row_keys(rows), rows):
        group = groups.get(row.get("MA_NHOM", ""), {})
        if row.get("MA_DICH_VU"):
            coding = {"system": ctx.cs("service"), "code": row["MA_DICH_VU"]}
            if row.get("TEN_DICH_VU"):
                coding["display"] = row["TEN_DICH_VU"]
            code = {"coding": [coding], "text": row.get("TEN_DICH_VU") or row["MA_DICH_VU"]}
        elif row.get("MA_VAT_TU"):
            coding = {"system": ctx.cs("supply"), "code": row["MA_VAT_TU"]}
            if row.get("TEN_VAT_TU"):
                coding["display"] = row["TEN_VAT_TU"]
            code = {"coding": [coding], "text": row.get("TEN_VAT_TU") or row["MA_VAT_TU"]}
        else:
            code = {
                "text": row.get("TEN_DICH_VU")
                or row.get("TEN_VAT_TU")
                or f"MA_NHOM {row.get('MA_NHOM', '?')}"
            }
        subj = {"reference": ctx.patient_ref}
        enc = {"reference": ctx.encounter_ref}
        reasons = [
            {"coding": [ctx.dx_coding(c.strip())]} for c in (row.get("MA_BENH") or "").split(";") if c.strip()
        ]
        service_refs = []
        for rtype in group.get("resources", []):
            if rtype == "ServiceRequest":
                sr: dict = {
                    "resourceType": "ServiceRequest",
                    "id": ctx.rid("ServiceRequest", "XML3", key),
                    "status": "completed",
                    "intent": "order",
                    "code": code,
                    "subject": subj,
                    "encounter": enc,
                }
                category = ctx.fx["service_request_category"].get(group.get("category"))
                if category:
                    sr["category"] = [{"coding": [category]}]
                if ctx.dt(row.get("NGAY_TH_YL")):
                    sr["occurrenceDateTime"] = ctx.dt(row["NGAY_TH_YL"])
                if ctx.dt(row.get("NGAY_YL")):
                    sr["authoredOn"] = ctx.dt(row["NGAY_YL"])
                doc = ctx.practitioner(row.get("MA_BAC_SI"))
                if doc:
                    sr["requester"] = doc
                performers = [
                    p
                    for p in (ctx.practitioner(c) for c in (row.get("NGUOI_THUC_HIEN") or "").split(";"))
                    if p
                ]
                if performers:
                    sr["performer"] = performers
                if reasons:
                    sr["reasonCode"] = reasons
                ref = ctx.add(sr)
                if row.get("MA_DICH_VU"):
                    by_service.setdefault(
                        row["MA_DICH_VU"], {"ref": ref, "row": row, "category": group.get("category")}
                    )
            elif rtype == "Procedure":
                pcode = {"coding": list(code.get("coding", [])), "text": code["text"]}
                for c in (row.get("MA_PTTT_QT") or "").split(";"):
                    if c.strip():
                        pcode["coding"].append({"system": icd9, "code": c.strip()})
                if not pcode["coding"]:
                    del pcode["coding"]
                pr: dict = {
                    "resourceType": "Procedure",
                    "id": ctx.rid("Procedure", "XML3", key),
                    "status": "completed",
                    "code": pcode,
                    "subject": subj,
                    "encounter": enc,
                }
                start, end = (
                    ctx.dt(row.get("NGAY_TH_YL")) or ctx.dt(row.get("NGAY_YL")),
                    ctx.dt(row.get("NGAY_KQ")),
                )
                if start and end and end >= start:
                    pr["performedPeriod"] = {"start": start, "end": end}
                elif start:
                    pr["performedDateTime"] = start
                performers = [
                    p
                    for p in (ctx.practitioner(c) for c in (row.get("NGUOI_THUC_HIEN") or "").split(";"))
                    if p
                ]
                if performers:
                    pr["performer"] = [{"actor": p} for p in performers]
                if reasons:
                    pr["reasonCode"] = reasons
                if row.get("PP_VO_CAM"):
                    pr["usedCode"] = [
                        {
                            "coding": [
                                {
                                    "system": ctx.ps["code_systems"]["qd130"] + "/pp-vo-cam",
                                    "code": row["PP_VO_CAM"],
                                }
                            ]
                        }
                    ]
                service_refs.append(ctx.add(pr))
        if row.get("MA_GIUONG") and row.get("MA_KHOA"):
            ctx.location(row["MA_KHOA"])
        _charge(ctx, "XML3", key, row, code, "THANH_TIEN_BV", service=service_refs or None)
    return by_service


def map_results(ctx: Ctx, rows: list[dict], orders: dict[str, dict]) -> None:
    """XML4 rows → Observations, grouped into one DiagnosticReport per MA_DICH_VU."""
    groups: dict[str, list] = {}
    for key, row in zip(row_keys(rows), rows):
        svc = row.get("MA_DICH_VU", "")
        order = orders.get(svc, {})
        cat = order.get("category") or "laboratory"
        if row.get("MA_CHI_SO"):
            coding = {"system": ctx.cs("analyte"), "code": row["MA_CHI_SO"]}
        elif svc:
            coding = {"system": ctx.cs("service"), "code": svc}
        else:
            coding = None
        if coding and row.get("TEN_CHI_SO"):
            coding["display"] = row["TEN_CHI_SO"]
        code: dict = {"text": row.get("TEN_CHI_SO") or row.get("MA_CHI_SO") or svc or "CLS"}
        if coding:
            code["coding"] = [coding]
        standard = lab.loinc_coding(row) if cat == "laboratory" else None
        if standard:
            code["coding"] = [standard, *code.get("coding", [])]  # LOINC first, local code kept beside
        has_result = bool(row.get("GIA_TRI") or row.get("KET_LUAN") or row.get("MO_TA"))
        obs: dict = {
            "resourceType": "Observation",
            "id": ctx.rid("Observation", "XML4", key),
            "status": "final" if has_result else "registered",
            "category": [{"coding": [{"system": OBS_CAT, "code": cat}]}],
            "code": code,
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
        }
        if order.get("ref"):
            obs["basedOn"] = [order["ref"]]
        when = ctx.dt(row.get("NGAY_KQ"))
        if when:
            obs["effectiveDateTime"] = when
            obs["issued"] = when
        doc = ctx.practitioner(row.get("MA_BS_DOC_KQ"))
        if doc:
            obs["performer"] = [doc]
        val = row.get("GIA_TRI")
        n = _num(ctx, val) if val else None
        if val:
            if n is not None:
                obs["valueQuantity"] = lab.quantity(n, row.get("DON_VI_DO"))
            else:
                obs["valueString"] = val + (f" {row['DON_VI_DO']}" if row.get("DON_VI_DO") else "")
        if cat == "laboratory":
            written = [t for t in (row.get("MO_TA"), row.get("KET_LUAN")) if t]
            rng = lab.reference_range(written, row.get("DON_VI_DO"))
            flag = lab.interpretation([row["KET_LUAN"]] if row.get("KET_LUAN") else [], n, rng)
            if flag:
                obs["interpretation"] = [flag]
            if rng:
                obs["referenceRange"] = [rng]
        notes = [t for t in (row.get("KET_LUAN"),) if t]
        if notes:
            obs["note"] = [{"text": t} for t in notes]
        ref = ctx.add(obs)
        groups.setdefault(svc, []).append((ref, row, when))
    for svc, items in groups.items():
        order = orders.get(svc, {})
        orow = order.get("row", {})
        cat = order.get("category") or "laboratory"
        if svc:
            c = {"system": ctx.cs("service"), "code": svc}
            if orow.get("TEN_DICH_VU"):
                c["display"] = orow["TEN_DICH_VU"]
            code = {"coding": [c], "text": orow.get("TEN_DICH_VU") or svc}
        else:
            code = {"text": "Kết quả cận lâm sàng"}
        dr: dict = {
            "resourceType": "DiagnosticReport",
            "id": ctx.rid("DiagnosticReport", "XML4", svc or "-"),
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                            "code": {"laboratory": "LAB", "imaging": "RAD"}.get(cat, "OTH"),
                        }
                    ]
                }
            ],
            "code": code,
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
            "result": [r for r, _, _ in items],
        }
        if order.get("ref"):
            dr["basedOn"] = [order["ref"]]
        times = sorted(w for _, _, w in items if w)
        if times:
            dr["effectiveDateTime"] = times[0]
            dr["issued"] = times[-1]
        descriptive = [row for _, row, _ in items if row.get("MO_TA") or not row.get("GIA_TRI")]
        concl = "; ".join(dict.fromkeys(r["KET_LUAN"] for r in descriptive if r.get("KET_LUAN")))
        if concl:
            dr["conclusion"] = concl
        texts = [r["MO_TA"] for r in descriptive if r.get("MO_TA")]
        if texts:
            from .context import b64

            dr["presentedForm"] = [
                {
                    "contentType": "text/plain; charset=utf-8",
                    "data": b64("\n\n".join(texts)),
                    "title": "Mô tả",
                }
            ]
        ctx.add(dr)


def map_progress(ctx: Ctx, rows: list[dict]) -> None:
    """XML5 row → ClinicalImpression (note text, consultation, surgery) + vital-sign Observations from CSST<…>."""
    vitals = ctx.codes["vital_signs"]
    loinc, ucum = ctx.fx["loinc"], ctx.fx["ucum"]
    for key, row in zip(row_keys(rows), rows):
        when = ctx.dt(row.get("THOI_DIEM_DBLS"))
        text = row.get("DIEN_BIEN_LS", "")
        base = {"subject": {"reference": ctx.patient_ref}, "encounter": {"reference": ctx.encounter_ref}}
        found = []
        m = _CSST.search(text)
        if m:
            for tok in m.group(1).split("_"):
                tm = _TOKEN.match(tok.strip())
                if not tm or tm.group(1) not in vitals:
                    continue
                code, raw = tm.group(1), tm.group(2)
                spec = vitals[code]
                obs: dict = {
                    "resourceType": "Observation",
                    "id": ctx.rid("Observation", "XML5", key, code),
                    "status": "final",
                    "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
                    "code": {
                        "coding": [{"system": loinc, "code": spec["loinc"], "display": spec["display"]}]
                    },
                    **base,
                }
                if when:
                    obs["effectiveDateTime"] = when
                if code == "HA":
                    parts = raw.split("/")
                    if len(parts) != 2:
                        continue
                    try:
                        sys_v, dia_v = to_number(parts[0]), to_number(parts[1])
                    except ValueError:
                        continue
                    obs["component"] = [
                        {
                            "code": {
                                "coding": [
                                    {"system": loinc, "code": spec[k]["loinc"], "display": spec[k]["display"]}
                                ]
                            },
                            "valueQuantity": {
                                "value": v,
                                "unit": spec["unit"],
                                "system": ucum,
                                "code": spec["ucum"],
                            },
                        }
                        for k, v in (("systolic", sys_v), ("diastolic", dia_v))
                    ]
                else:
                    try:
                        v = to_number(raw)
                    except ValueError:
                        continue
                    obs["valueQuantity"] = {
                        "value": v,
                        "unit": spec["unit"],
                        "system": ucum,
                        "code": spec["ucum"],
                    }
                found.append(ctx.add(obs))
        ci: dict = {
            "resourceType": "ClinicalImpression",
            "id": ctx.rid("ClinicalImpression", "XML5", key),
            "status": "completed",
            **base,
        }
        if text:
            ci["description"] = text
        if when:
            ci["effectiveDateTime"] = when
            ci["date"] = when
        authors = [
            p for p in (ctx.practitioner(c) for c in (row.get("NGUOI_THUC_HIEN") or "").split(";")) if p
        ]
        if authors:
            ci["assessor"] = authors[0]  # the main author comes first (QĐ130 XML5 NGUOI_THUC_HIEN)
            # ClinicalImpression has one assessor; the co-authors are kept in an extension, in order.
            ci.setdefault("extension", []).extend(
                {"url": ctx.ext("co_author"), "valueReference": a} for a in authors[1:]
            )
        notes = [
            f"{label}: {row[f]}"
            for f, label in (
                ("GIAI_DOAN_BENH", "Giai đoạn bệnh"),
                ("HOI_CHAN", "Hội chẩn"),
                ("PHAU_THUAT", "Phẫu thuật"),
            )
            if row.get(f)
        ]
        if notes:
            ci["note"] = [{"text": t} for t in notes]
        if found:
            ci["supportingInfo"] = found
        ctx.add(ci)
