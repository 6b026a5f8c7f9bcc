"""XML1 closing text → a readable ClinicalImpression: treatment method, outcome, the doctor's advice.

XML1 carries the end-of-visit text a clinician reads first — PP_DIEU_TRI (treatment method), GHI_CHU
(the doctor's advice to the patient), KET_QUA_DTRI (outcome) — and outpatient visits have no discharge
paper (XML7) to carry it. One ClinicalImpression per episode holds it: the assessment that closed the
visit, pointing at the episode's diagnoses, dated at discharge.
"""

from __future__ import annotations

from .context import Ctx

CONCLUSION_CODE = "ket-luan-dot-dieu-tri"


def map_conclusion(ctx: Ctx, row: dict) -> dict | None:
    """ClinicalImpression with summary = treatment method, note = doctor's advice; None when XML1 has neither."""
    method, advice = row.get("PP_DIEU_TRI"), row.get("GHI_CHU")
    if not method and not advice:
        return None
    ci: dict = {
        "resourceType": "ClinicalImpression",
        "id": ctx.rid("ClinicalImpression", "XML1", "conclusion"),
        "status": "completed",
        "code": {
            "coding": [
                {
                    "system": ctx.cs("document_type"),
                    "code": CONCLUSION_CODE,
                    "display": "Kết luận đợt điều trị",
                }
            ],
            "text": "Kết luận đợt điều trị",
        },
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
    }
    when = ctx.dt(row.get("NGAY_RA")) or ctx.dt(row.get("NGAY_VAO"))
    if when:
        ci["effectiveDateTime"] = when
        ci["date"] = when
    if row.get("CHAN_DOAN_RV"):
        ci["description"] = f"Chẩn đoán ra viện: {row['CHAN_DOAN_RV']}"
    if method:
        ci["summary"] = f"Phương pháp điều trị: {method}"
    if ctx.condition_refs:
        ci["problem"] = list(ctx.condition_refs)
    if row.get("KET_QUA_DTRI"):
        ci["finding"] = [{"itemCodeableConcept": ctx.coded("ket_qua_dtri", row["KET_QUA_DTRI"])}]
    if advice:
        ci["note"] = [{"text": f"Lời dặn của bác sĩ: {advice}"}]
    return ctx.add(ci)
