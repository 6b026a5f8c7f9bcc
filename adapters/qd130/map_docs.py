"""Papers: XML7 discharge paper, XML8 record summary (Composition), XML11 sick leave (DocumentReference),
XML13 referral (ServiceRequest), XML14 / NGAY_TAI_KHAM re-exam (Appointment)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .context import Ctx, b64, narrative
from .map_episode import _split

SNOMED = "http://snomed.info/sct"


def _doc_type(ctx: Ctx, loai: str) -> dict:
    """Document type: local LOAIHOSO coding (+ LOINC when the adapter's data names one)."""
    spec = ctx.fx["documents"][loai]
    cc = {
        "coding": [{"system": ctx.cs("document_type"), "code": loai, "display": spec["title"]}],
        "text": spec["title"],
    }
    if spec.get("loinc"):
        cc["coding"].insert(
            0, {"system": ctx.fx["loinc"], "code": spec["loinc"], "display": spec["loinc_display"]}
        )
    return cc


def _sections(row: dict, fields: list[tuple[str, str]]) -> list[dict]:
    """Composition sections for the non-empty text fields, titled in Vietnamese."""
    return [{"title": title, "text": narrative(row[f])} for f, title in fields if row.get(f)]


def _composition(
    ctx: Ctx, loai: str, pos: int, row: dict, author: dict | None, attester: dict | None, sections: list[dict]
) -> dict:
    """A final Composition for one paper of this episode."""
    comp: dict = {
        "resourceType": "Composition",
        "id": ctx.rid("Composition", loai, pos),
        "status": "final",
        "type": _doc_type(ctx, loai),
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
        "date": ctx.date(row.get("NGAY_CT"))
        or ctx.dt(ctx.xml1.get("NGAY_RA"))
        or ctx.dt(ctx.xml1.get("NGAY_VAO"))
        or "1900",
        "author": [author or ctx.org()],
        "title": ctx.fx["documents"][loai]["title"],
        "custodian": ctx.org(),
    }
    if attester:
        comp["attester"] = [{"mode": "legal", "party": attester}]
    if sections:
        comp["section"] = sections
    return comp


def map_discharge_paper(ctx: Ctx, rows: list[dict]) -> None:
    """XML7 (giấy ra viện) → Composition; signer MA_BS/TEN_BS as author and legal attester."""
    for pos, row in enumerate(rows, start=1):
        signer = ctx.practitioner(row.get("MA_BS"), row.get("TEN_BS"), kind="health_id")
        secs = _sections(
            row,
            [("CHAN_DOAN_RV", "Chẩn đoán"), ("PP_DIEUTRI", "Phương pháp điều trị"), ("GHI_CHU", "Ghi chú")],
        )
        if row.get("MA_DINH_CHI_THAI") == "1":
            txt = "; ".join(
                f"{k}: {row[k]}"
                for k in ("NGUYENNHAN_DINHCHI", "THOIGIAN_DINHCHI", "TUOI_THAI")
                if row.get(k)
            )
            secs.append({"title": "Đình chỉ thai nghén", "text": narrative(txt or "Có")})
        if row.get("SO_NGAY_NGHI"):
            rest = f"{row['SO_NGAY_NGHI']} ngày"
            if row.get("NGOAITRU_TUNGAY") or row.get("NGOAITRU_DENNGAY"):
                start, end = ctx.date(row.get("NGOAITRU_TUNGAY")), ctx.date(row.get("NGOAITRU_DENNGAY"))
                rest += f" ({start or '?'} – {end or '?'})"
            secs.append({"title": "Nghỉ ngoại trú", "text": narrative(rest)})
        parents = "; ".join(
            f"{label}: {row[f]}" for f, label in (("HO_TEN_CHA", "Cha"), ("HO_TEN_ME", "Mẹ")) if row.get(f)
        )
        if parents:
            secs.append({"title": "Cha mẹ", "text": narrative(parents)})
        comp = _composition(ctx, "XML7", pos, row, signer, signer, secs)
        if row.get("SO_LUU_TRU"):
            comp["identifier"] = {"system": ctx.idsys("archive"), "value": row["SO_LUU_TRU"]}
        ctx.add(comp)


def map_summary(ctx: Ctx, rows: list[dict]) -> None:
    """XML8 (tóm tắt hồ sơ bệnh án) → Composition (discharge summary)."""
    for pos, row in enumerate(rows, start=1):
        signer = ctx.practitioner(row.get("MA_TTDV"), kind="health_id")
        secs = _sections(
            row,
            [
                ("CHAN_DOAN_VAO", "Chẩn đoán vào viện"),
                ("CHAN_DOAN_RV", "Chẩn đoán ra viện"),
                ("QT_BENHLY", "Quá trình bệnh lý và diễn biến lâm sàng"),
                ("TOMTAT_KQ", "Tóm tắt kết quả cận lâm sàng"),
                ("PP_DIEUTRI", "Phương pháp điều trị"),
                ("GHI_CHU", "Ghi chú"),
            ],
        )
        birth = "; ".join(
            f"{label}: {ctx.when(row[f]) or row[f]}" if f.startswith("NGAY") else f"{label}: {row[f]}"
            for f, label in (
                ("NGAY_SINHCON", "Ngày sinh con"),
                ("NGAY_CONCHET", "Ngày con chết"),
                ("SO_CONCHET", "Số con chết"),
            )
            if row.get(f)
        )
        if birth:
            secs.append({"title": "Thông tin sinh con", "text": narrative(birth)})
        ctx.add(_composition(ctx, "XML8", pos, row, signer, signer, secs))


def certificate(
    ctx: Ctx,
    loai: str,
    pos: int,
    row: dict,
    raw: list[bytes],
    description: str | None,
    author: dict | None,
    date_field: str = "NGAY_CT",
    number_fields: tuple[str, ...] = ("SO_CT", "SO_SERI"),
    period_fields: tuple[str, str] = ("TU_NGAY", "DEN_NGAY"),
) -> dict:
    """A paper issued for this episode (XML10, XML11, XML12) → DocumentReference carrying the original
    inner XML, so every field of the paper travels with it even where FHIR has no element."""
    dref: dict = {
        "resourceType": "DocumentReference",
        "id": ctx.rid("DocumentReference", loai, pos),
        "status": "current",
        "type": _doc_type(ctx, loai),
        "subject": {"reference": ctx.patient_ref},
    }
    ids = [{"system": ctx.idsys("document"), "value": row[f]} for f in number_fields if row.get(f)]
    if ids:
        dref["identifier"] = ids
    d = ctx.date(row.get(date_field))
    if d:
        dref["date"] = f"{d}T00:00:00+07:00"
    if author:
        dref["author"] = [author]
    if description:
        dref["description"] = description
    data = raw[pos - 1] if pos - 1 < len(raw) else b""
    dref["content"] = [
        {
            "attachment": {
                "contentType": "application/xml",
                "data": b64(data),
                "title": ctx.fx["documents"][loai]["title"],
            }
        }
    ]
    context: dict = {"encounter": [{"reference": ctx.encounter_ref}]}
    start, end = period_fields
    period = {k: v for k, v in (("start", ctx.date(row.get(start))), ("end", ctx.date(row.get(end)))) if v}
    if period:
        context["period"] = period
    dref["context"] = context
    return ctx.add(dref)


def map_sick_leave(ctx: Ctx, rows: list[dict], raw: list[bytes]) -> None:
    """XML11 (sick-leave certificate) → DocumentReference carrying the original inner XML."""
    for pos, row in enumerate(rows, start=1):
        days = row.get("SO_NGAY_NGHI")
        author = ctx.practitioner(row.get("MA_BS"), kind="health_id")
        certificate(ctx, "XML11", pos, row, raw, f"Nghỉ việc {days} ngày" if days else None, author)


def map_pregnancy_leave(ctx: Ctx, rows: list[dict], raw: list[bytes]) -> None:
    """XML10 (giấy nghỉ dưỡng thai) → DocumentReference: days and diagnosis in the description, the
    signing doctor (MA_BS, TEN_BS) as author, the rest in the attached original XML."""
    for pos, row in enumerate(rows, start=1):
        parts = []
        if row.get("SO_NGAY"):
            parts.append(f"Nghỉ dưỡng thai {row['SO_NGAY']} ngày")
        if row.get("CHAN_DOAN_RV"):
            parts.append(f"Chẩn đoán: {row['CHAN_DOAN_RV']}")
        author = ctx.practitioner(row.get("MA_BS"), row.get("TEN_BS"), kind="health_id")
        certificate(ctx, "XML10", pos, row, raw, "; ".join(parts) or None, author)


def map_referral(ctx: Ctx, rows: list[dict]) -> None:
    """XML13 (referral paper) → ServiceRequest to the destination facility, identified by the paper number."""
    for pos, row in enumerate(rows, start=1):
        sr: dict = {"resourceType": "ServiceRequest", "id": ctx.rid("ServiceRequest", "XML13", pos)}
        ids = [
            {"system": ctx.idsys(k), "value": row[f]}
            for k, f in (
                ("referral", "GIAY_CHUYEN_TUYEN"),
                ("referral_record", "SO_HOSO"),
                ("referral_register", "SO_CHUYENTUYEN"),
            )
            if row.get(f)
        ]
        if ids:
            sr["identifier"] = ids
        sr.update(
            {
                "status": "active",
                "intent": "order",
                "category": [
                    {"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]}
                ],
                "code": {
                    "coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}],
                    "text": "Chuyển tuyến",
                },
                "subject": {"reference": ctx.patient_ref},
                "encounter": {"reference": ctx.encounter_ref},
            }
        )
        when = ctx.dt(row.get("NGAY_RA")) or ctx.dt(ctx.xml1.get("NGAY_RA"))
        if when:
            sr["authoredOn"] = when
        doc = ctx.practitioner(row.get("MA_BAC_SI"))
        if doc:
            sr["requester"] = doc
        dest = row.get("MA_NOI_DEN") or ctx.xml1.get("MA_NOI_DEN")
        if dest:
            sr["performer"] = [ctx.org(dest)]
        codes = _split(row.get("MA_BENH_CHINH")) + _split(row.get("MA_BENH_KT"))
        if codes:
            sr["reasonCode"] = [{"coding": [ctx.dx_coding(c)]} for c in codes]
        if ctx.condition_refs:
            sr["reasonReference"] = ctx.condition_refs
        sr["supportingInfo"] = [{"reference": ctx.encounter_ref}]
        notes = [
            f"{label}: {row[f]}"
            for f, label in (
                ("DAU_HIEU_LS", "Dấu hiệu lâm sàng"),
                ("QT_BENHLY", "Quá trình bệnh lý"),
                ("TOMTAT_KQ", "Tóm tắt kết quả"),
                ("PP_DIEUTRI", "Phương pháp điều trị"),
                ("TEN_DICH_VU", "Dịch vụ đã dùng"),
                ("TEN_THUOC", "Thuốc đã dùng"),
                ("HUONG_DIEU_TRI", "Hướng điều trị"),
                ("PHUONGTIEN_VC", "Phương tiện vận chuyển"),
                ("HOTEN_NGUOI_HT", "Người hộ tống"),
                ("CHUCDANH_NGUOI_HT", "Chức danh người hộ tống"),
            )
            if row.get(f)
        ]
        if notes:
            sr["note"] = [{"text": t} for t in notes]
        if row.get("MA_LYDO_CT"):
            sr["extension"] = [
                {
                    "url": ctx.ext("referral_reason"),
                    "valueCodeableConcept": ctx.coded("ma_lydo_ct", row["MA_LYDO_CT"]),
                }
            ]
        ctx.add(sr)


# HL7 v2 table 0276 "FOLLOWUP" (a follow-up visit), as the SIU mapping sets from SCH-7
def _reexam_type() -> dict:
    """appointmentType of a re-exam (a new dict per resource: bundles are edited in place later)."""
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}]}


def map_reexam(ctx: Ctx, rows: list[dict]) -> None:
    """XML14 (re-exam appointment paper) → booked Appointment (end = start + configured minutes)."""
    minutes = int(ctx.fx.get("appointment_default_minutes", 30))
    for pos, row in enumerate(rows, start=1):
        start = ctx.dt(row.get("NGAY_HEN_KL"))
        if not start:
            continue
        end_dt = datetime.fromisoformat(start) + timedelta(minutes=minutes)
        appt: dict = {"resourceType": "Appointment", "id": ctx.rid("Appointment", "XML14", pos)}
        if row.get("SO_GIAYHEN_KL"):
            appt["identifier"] = [
                {"system": ctx.idsys("appointment", row.get("MA_CSKCB")), "value": row["SO_GIAYHEN_KL"]}
            ]
        appt.update(
            {
                "status": "booked",
                "appointmentType": _reexam_type(),
                "description": "Hẹn khám lại",
                "start": start,
                "end": end_dt.isoformat(),
            }
        )
        if ctx.date(row.get("NGAY_CT")):
            appt["created"] = ctx.date(row["NGAY_CT"])
        if ctx.condition_refs:
            appt["reasonReference"] = ctx.condition_refs
        if ctx.encounter_ref:  # the visit that gave it: its facility and day (re-exam kept/missed reports)
            appt["supportingInformation"] = [{"reference": ctx.encounter_ref}]
        parts = [{"actor": {"reference": ctx.patient_ref}, "status": "accepted"}]
        doc = ctx.practitioner(row.get("MA_BAC_SI"))
        if doc:
            parts.append({"actor": doc, "status": "accepted"})
        appt["participant"] = parts
        ctx.add(appt)


def map_reexam_dates(ctx: Ctx, row: dict) -> None:
    """XML1 NGAY_TAI_KHAM without an XML14 paper → proposed Appointment(s) for that day."""
    for d in _split(row.get("NGAY_TAI_KHAM")):
        day = ctx.date(d)
        if not day:
            continue
        ctx.add(
            {
                "resourceType": "Appointment",
                "id": ctx.rid("Appointment", "XML1", d),
                "status": "proposed",
                "appointmentType": _reexam_type(),
                "description": "Hẹn tái khám",
                **(
                    {"supportingInformation": [{"reference": ctx.encounter_ref}]} if ctx.encounter_ref else {}
                ),
                "requestedPeriod": [{"start": day, "end": day}],
                "participant": [{"actor": {"reference": ctx.patient_ref}, "status": "needs-action"}],
            }
        )
