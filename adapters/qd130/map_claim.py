"""XML1 money totals (+ XML2/XML3 rows as items) → Claim.

Why a Claim and not an ExplanationOfBenefit: the QĐ130 file is what the facility sends to Vietnam
Social Security (BHXH) to be paid — its totals (T_TONGCHI_BV, T_BHTT "amount claimed from the fund",
T_BNCCT co-payment…) are the facility's request, computed by the facility. The fund's adjudication
(giám định: what it accepts, refuses, pays) is not in the file; an ExplanationOfBenefit states an
adjudication, so emitting one would invent the payer's decision. A Claim (use = claim) is what the file
is. A visit without a BHYT card has no Coverage to claim against (Claim.insurance is 1..*): its totals
stay on the ChargeItems and the archived payload, and the record says so in a warning.
"""

from __future__ import annotations

from .context import Ctx
from .map_orders import _num

# XML1 money totals, each as a sub-extension (Money, VND) of the totals extension.
TOTALS = (
    "T_THUOC",
    "T_VTYT",
    "T_TONGCHI_BV",
    "T_TONGCHI_BH",
    "T_BNTT",
    "T_BNCCT",
    "T_BHTT",
    "T_NGUONKHAC",
    "T_BHTT_GDV",
)


def map_claim(ctx: Ctx, row: dict, coverages: list[dict], tables: dict[str, list[dict]]) -> dict | None:
    """Claim for the episode: totals, settlement period, items per billed row, diagnoses; None without a card."""
    if not coverages:
        return None
    claim: dict = {
        "resourceType": "Claim",
        "id": ctx.rid("Claim", "XML1"),
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional" if ctx.kcb in ("03", "04", "06", "09") else "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": ctx.patient_ref},
        "created": ctx.dt(row.get("NGAY_TTOAN"))
        or ctx.dt(row.get("NGAY_RA"))
        or ctx.dt(row.get("NGAY_VAO"))
        or "1900",
        "insurer": ctx.payor(),
        "provider": ctx.org(),
        "priority": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]
        },
        "insurance": [
            {"sequence": i, "focal": i == 1, "coverage": {"reference": c["reference"]}}
            for i, c in enumerate(coverages, start=1)
        ],
    }
    period = {
        k: v for k, v in (("start", ctx.dt(row.get("NGAY_VAO"))), ("end", ctx.dt(row.get("NGAY_RA")))) if v
    }
    if period:
        claim["billablePeriod"] = period
    sub = [{"url": f, "valueMoney": ctx.money(n)} for f in TOTALS if (n := _num(ctx, row.get(f))) is not None]
    for f in ("NAM_QT", "THANG_QT"):
        if (n := _num(ctx, row.get(f))) is not None and isinstance(n, int):
            sub.append({"url": f, "valueInteger": n})
    if sub:
        claim["extension"] = [{"url": ctx.ext("claim_totals"), "extension": sub}]
    if ctx.condition_refs:
        claim["diagnosis"] = [
            {"sequence": i, "diagnosisReference": ref} for i, ref in enumerate(ctx.condition_refs, start=1)
        ]
    items = []
    for loai, code_field, name_field, system_key in (
        ("XML2", "MA_THUOC", "TEN_THUOC", "drug"),
        ("XML3", "MA_DICH_VU", "TEN_DICH_VU", "service"),
    ):
        for r in tables.get(loai) or []:
            code = r.get(code_field) or r.get("MA_VAT_TU")
            system = ctx.cs(system_key if r.get(code_field) else "supply")
            pos: dict = {"text": r.get(name_field) or r.get("TEN_VAT_TU") or code or loai}
            if code:
                pos["coding"] = [{"system": system, "code": code}]
            item: dict = {"sequence": len(items) + 1, "productOrService": pos}
            if (q := _num(ctx, r.get("SO_LUONG"))) is not None:
                item["quantity"] = {"value": q}
            price = _num(ctx, r.get("DON_GIA") or r.get("DON_GIA_BV"))
            if price is not None:
                item["unitPrice"] = ctx.money(price)
            if (net := _num(ctx, r.get("THANH_TIEN_BV"))) is not None:
                item["net"] = ctx.money(net)
            item["encounter"] = [{"reference": ctx.encounter_ref}]
            items.append(item)
    if items:
        claim["item"] = items
    total = _num(ctx, row.get("T_TONGCHI_BV"))
    if total is not None:
        claim["total"] = ctx.money(total)
    return ctx.add(claim)
