"""XML2 (drugs, blood, oxygen) → Medication, MedicationRequest, MedicationDispense/Administration, ChargeItem."""

from __future__ import annotations

from mappings.terminology import fold

from .context import Ctx, shared_id
from .dosage import structured_dosage
from .map_orders import _charge, _num, row_keys


def drug_text(row: dict) -> str:
    """'TEN_THUOC HAM_LUONG', without repeating a strength the name already carries ('Paracetamol 500mg')."""
    name, strength = row.get("TEN_THUOC") or "", row.get("HAM_LUONG") or ""
    if strength and fold(strength) not in fold(name):
        return f"{name} {strength}".strip()
    return name or strength or row.get("MA_THUOC", "")


def medication(ctx: Ctx, row: dict) -> dict:
    """Reference to the Medication of a row: national code (MA_THUOC), name, form, strength, registration.

    Shared across episodes and hospitals: the same product line (code, registration number, name,
    strength, form) is one Medication resource."""
    text = drug_text(row)
    code: dict = {"text": text}
    if row.get("MA_THUOC"):
        coding = {"system": ctx.cs("drug"), "code": row["MA_THUOC"]}
        if row.get("TEN_THUOC"):
            coding["display"] = row["TEN_THUOC"]
        code["coding"] = [coding]
    keys = (row.get(f, "") for f in ("MA_THUOC", "SO_DANG_KY", "TEN_THUOC", "HAM_LUONG", "DANG_BAO_CHE"))
    med: dict = {"resourceType": "Medication", "id": shared_id("Medication", *keys), "code": code}
    reg = row.get("SO_DANG_KY")
    if reg:
        ext = ctx.ps.get("medication_registration_extension")
        if ext:
            med["extension"] = [{"url": ext, "valueString": reg}]
        med["identifier"] = [{"system": ctx.idsys("registration_number"), "value": reg}]
    if row.get("DANG_BAO_CHE"):
        med["form"] = {"text": row["DANG_BAO_CHE"]}
    if row.get("HAM_LUONG"):
        # The strength as written ("500mg", "10mg+5mg"): one ingredient line holding the text, because
        # the national code names the active ingredient(s) and the strength is not split per ingredient.
        med["ingredient"] = [
            {
                "itemCodeableConcept": {**code, "text": row.get("TEN_THUOC") or text},
                "extension": [{"url": ctx.ext("strength_text"), "valueString": row["HAM_LUONG"]}],
            }
        ]
    ref = ctx.add(med)
    ref["display"] = text
    return ref


def _dosage(ctx: Ctx, row: dict) -> dict:
    """Dosage: LIEU_DUNG text + its structured timing/dose, CACH_DUNG advice, route (local + SNOMED)."""
    dosage: dict = {}
    if row.get("LIEU_DUNG"):
        dosage["text"] = row["LIEU_DUNG"]
    if row.get("CACH_DUNG"):
        dosage["patientInstruction"] = row["CACH_DUNG"]
    dosage.update(structured_dosage(row.get("LIEU_DUNG")))
    if row.get("DUONG_DUNG"):
        route_map = ctx.code_map("duong_dung")
        route = ctx.coded("duong_dung", row["DUONG_DUNG"])
        t = route_map["codes"].get(row["DUONG_DUNG"])
        if t:
            route["coding"].append(
                {"system": route_map["target"], "code": t["target"], "display": t["target_display"]}
            )
        dosage["route"] = route
    return dosage


def map_drugs(ctx: Ctx, rows: list[dict]) -> None:
    """XML2 row → MedicationRequest + MedicationDispense (outpatient) or MedicationAdministration + ChargeItem."""
    outpatient = ctx.kcb in ctx.codes["outpatient_kcb"]
    for key, row in zip(row_keys(rows), rows):
        med = medication(ctx, row)
        dosage = _dosage(ctx, row)
        subj = {"reference": ctx.patient_ref}
        enc = {"reference": ctx.encounter_ref}
        mr: dict = {
            "resourceType": "MedicationRequest",
            "id": ctx.rid("MedicationRequest", "XML2", key),
            "status": "completed",
            "intent": "order",
            "medicationReference": med,
            "subject": subj,
            "encounter": enc,
        }
        if ctx.dt(row.get("NGAY_YL")):
            mr["authoredOn"] = ctx.dt(row["NGAY_YL"])
        doctors = [p for p in (ctx.practitioner(c) for c in (row.get("MA_BAC_SI") or "").split(";")) if p]
        if doctors:
            mr["requester"] = doctors[0]
        if ctx.condition_refs:
            mr["reasonReference"] = ctx.condition_refs[:1]
        if dosage:
            mr["dosageInstruction"] = [dosage]
        qty = _num(ctx, row.get("SO_LUONG"))
        quantity = (
            {"value": qty, "unit": row["DON_VI_TINH"]}
            if qty is not None and row.get("DON_VI_TINH")
            else ({"value": qty} if qty is not None else None)
        )
        if quantity:
            mr["dispenseRequest"] = {"quantity": quantity}
        mr_ref = ctx.add(mr)
        when = ctx.dt(row.get("NGAY_TH_YL")) or ctx.dt(row.get("NGAY_YL"))
        if outpatient:
            md: dict = {
                "resourceType": "MedicationDispense",
                "id": ctx.rid("MedicationDispense", "XML2", key),
                "status": "completed",
                "medicationReference": med,
                "subject": subj,
                "context": enc,
                "authorizingPrescription": [mr_ref],
            }
            if quantity:
                md["quantity"] = quantity
            if when:
                md["whenHandedOver"] = when
            if dosage:
                md["dosageInstruction"] = [dosage]
            given = ctx.add(md)
        else:
            ma: dict = {
                "resourceType": "MedicationAdministration",
                "id": ctx.rid("MedicationAdministration", "XML2", key),
                "status": "completed",
                "medicationReference": med,
                "subject": subj,
                "context": enc,
                "request": mr_ref,
            }
            ma["effectiveDateTime"] = when or ctx.dt(ctx.xml1.get("NGAY_VAO")) or "1900"
            dose: dict = {}
            if row.get("LIEU_DUNG"):
                dose["text"] = row["LIEU_DUNG"]
            if "route" in dosage:
                dose["route"] = dosage["route"]
            if dosage.get("doseAndRate"):
                dose["dose"] = dosage["doseAndRate"][0]["doseQuantity"]
            if dose:
                ma["dosage"] = dose
            given = ctx.add(ma)
        ci_code: dict = {"text": med["display"]}
        if row.get("MA_THUOC"):
            ci_code["coding"] = [{"system": ctx.cs("drug"), "code": row["MA_THUOC"]}]
        _charge(ctx, "XML2", key, row, ci_code, "THANH_TIEN_BV", service=[given], product_ref=med)
