"""Certificates with clinical content: XML9 (birth certificate) and XML12 (medical assessment).

XML9 (giấy chứng sinh, one row per newborn) → the newborn as a `Patient` (name, sex, birth date and time,
birthplace, temporary card, multiple birth), the mother/caregiver (NND) and the father as `RelatedPerson`s
of the newborn, the birth weight as an `Observation` (LOINC 8339-4, grams), and the paper itself as a
`Composition` "Giấy chứng sinh" whose sections keep the delivery facts FHIR has no element for (number of
children, birth order, living children, caesarean, born before 32 weeks, condition of the child, birth
attendant, notes, register book).

XML12 (biên bản giám định y khoa, a disability/impairment assessment council) → a `ClinicalImpression`
"Giám định y khoa" (meeting date, chair, kind of assessment, examination result, recommendation and
conclusion) whose findings are `Observation`s (impairment rates in %, disability type and severity), and a
`DocumentReference` for the minutes carrying the original XML. The assessed person is the record's patient:
the standard's appendix does not key XML12 by MA_LK and the BHXH guide says HIS do not send it (councils key
it on the portal), so it is mapped only when an implementation sends it inside a HOSO.
"""

from __future__ import annotations

from adapters.names import human_name

from .context import V2_0203, Ctx, narrative
from .map_docs import _composition, certificate
from .map_episode import _address
from .map_programs import local
from .values import to_birth, to_number

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_YES = {"1": "Có", "0": "Không"}


def _standard(ctx: Ctx, key: str) -> dict:
    spec = ctx.fx["standard_codes"][key]
    cc: dict = {"coding": [{"system": spec["system"], "code": spec["code"], "display": spec["display"]}]}
    if spec.get("text"):
        cc["text"] = spec["text"]
    return cc


def _birth(value: str | None) -> tuple[str | None, str | None]:
    """(birthDate, birth time) of a NGAY_SINH-style value; (None, None) when absent or invalid."""
    if not value:
        return None, None
    try:
        return to_birth(value)
    except ValueError:
        return None, None


def _number(ctx: Ctx, value: str | None) -> int | float | None:
    try:
        return to_number(value, ctx.vendor) if value else None
    except ValueError:
        return None


def _newborn(ctx: Ctx, row: dict, pos: int) -> dict:
    """The newborn of one XML9 row as a Patient of this facility."""
    pat: dict = {"resourceType": "Patient", "id": ctx.rid("Patient", "XML9", pos), "active": True}
    if row.get("MA_THE_TAM"):
        pat["identifier"] = [
            {
                "use": "temp",
                "type": {"coding": [{"system": V2_0203, "code": "SB"}]},
                "system": ctx.idsys("bhyt"),
                "value": row["MA_THE_TAM"],
            }
        ]
    if row.get("HO_TEN_CON"):
        pat["name"] = [human_name(row["HO_TEN_CON"])]
    gmap = ctx.code_map("gioi_tinh")
    if row.get("GIOI_TINH_CON"):
        pat["gender"] = gmap["codes"].get(row["GIOI_TINH_CON"], gmap["default"])["target"]
    day, time = _birth(row.get("NGAY_SINH_CON"))
    if day:
        pat["birthDate"] = day
    if time:
        pat["_birthDate"] = {"extension": [{"url": ctx.ext("birth_time"), "valueDateTime": time}]}
    if row.get("NOI_SINH_CON"):
        pat["extension"] = [{"url": ctx.ext("birth_place"), "valueAddress": {"text": row["NOI_SINH_CON"]}}]
    count = _number(ctx, row.get("SO_CON"))
    if count is not None:
        pat["multipleBirthBoolean"] = count > 1
    pat["managingOrganization"] = ctx.org()
    return ctx.add(pat)


def _caregiver(ctx: Ctx, row: dict, pos: int, newborn: dict) -> dict | None:
    """NND (mother or caregiver): name, birth date, CCCD (issue date and place), BHXH number, card, address."""
    fields = ("HO_TEN_NND", "SO_CCCD_NND", "MA_BHXH_NND", "MA_THE_NND", "NGAYSINH_NND", "NOI_CU_TRU_NND")
    if not any(row.get(f) for f in fields):
        return None
    rp: dict = {
        "resourceType": "RelatedPerson",
        "id": ctx.rid("RelatedPerson", "XML9", pos, "NND"),
        "active": True,
        "patient": newborn,
        "relationship": [{"text": "Mẹ hoặc người nuôi dưỡng"}],
    }
    idents = []
    cccd = row.get("SO_CCCD_NND")
    if cccd:
        kind = "passport" if not cccd.isdigit() else ("cccd" if len(cccd) == 12 else "cmnd")
        ident: dict = {
            "use": "official",
            "type": {"coding": [{"system": V2_0203, "code": "PPN" if kind == "passport" else "NI"}]},
            "system": ctx.idsys(kind),
            "value": cccd,
        }
        issued = ctx.when(row.get("NGAYCAP_CCCD_NND"))
        if issued:
            ident["period"] = {"start": issued}
        if row.get("NOICAP_CCCD_NND"):
            ident["assigner"] = {"display": row["NOICAP_CCCD_NND"]}
        idents.append(ident)
    if row.get("MA_BHXH_NND"):
        idents.append({"system": ctx.idsys("health_id"), "value": row["MA_BHXH_NND"]})
    if row.get("MA_THE_NND"):
        idents.append(
            {
                "type": {"coding": [{"system": V2_0203, "code": "SB"}]},
                "system": ctx.idsys("bhyt"),
                "value": row["MA_THE_NND"],
            }
        )
    if idents:
        rp["identifier"] = idents
    if row.get("HO_TEN_NND"):
        rp["name"] = [human_name(row["HO_TEN_NND"])]
    day, _ = _birth(row.get("NGAYSINH_NND"))
    if day:
        rp["birthDate"] = day
    addr = _address(
        ctx,
        {
            "DIA_CHI": row.get("NOI_CU_TRU_NND"),
            "MATINH_CU_TRU": row.get("MATINH_CU_TRU"),
            "MAHUYEN_CU_TRU": row.get("MAHUYEN_CU_TRU"),
            "MAXA_CU_TRU": row.get("MAXA_CU_TRU"),
        },
    )
    if addr:
        rp["address"] = [addr]
    return ctx.add(rp)


def _father(ctx: Ctx, row: dict, pos: int, newborn: dict) -> dict | None:
    if not row.get("HO_TEN_CHA"):
        return None
    return ctx.add(
        {
            "resourceType": "RelatedPerson",
            "id": ctx.rid("RelatedPerson", "XML9", pos, "CHA"),
            "active": True,
            "patient": newborn,
            "relationship": [_standard(ctx, "father")],
            "name": [human_name(row["HO_TEN_CHA"])],
        }
    )


def _birth_weight(ctx: Ctx, row: dict, pos: int, newborn: dict) -> dict | None:
    grams = _number(ctx, row.get("CAN_NANG_CON"))
    if grams is None:
        return None
    obs: dict = {
        "resourceType": "Observation",
        "id": ctx.rid("Observation", "XML9", pos, "CAN_NANG_CON"),
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "exam"}]}],
        "code": _standard(ctx, "birth_weight"),
        "subject": newborn,
        "encounter": {"reference": ctx.encounter_ref},
        "valueQuantity": {"value": grams, "unit": "g", "system": ctx.fx["ucum"], "code": "g"},
    }
    day, time = _birth(row.get("NGAY_SINH_CON"))
    if time or day:
        obs["effectiveDateTime"] = time or day
    return ctx.add(obs)


def _lines(row: dict, fields: tuple[tuple[str, str], ...], yes_no: tuple[str, ...] = ()) -> str:
    """'Label: value' lines for the filled fields (1/0 flags read as Có/Không)."""
    out = []
    for f, label in fields:
        v = row.get(f)
        if v:
            out.append(f"{label}: {_YES.get(v, v) if f in yes_no else v}")
    return "\n".join(out)


def map_birth_certificates(ctx: Ctx, rows: list[dict]) -> None:
    """XML9 rows → newborn Patient, caregiver and father RelatedPersons, birth weight, Composition."""
    for pos, row in enumerate(rows, start=1):
        newborn = _newborn(ctx, row, pos)
        mother = _caregiver(ctx, row, pos, newborn)
        father = _father(ctx, row, pos, newborn)
        weight = _birth_weight(ctx, row, pos, newborn)
        secs = []
        people = [r for r in (mother, father) if r]
        if people:
            secs.append(
                {
                    "title": "Cha, mẹ hoặc người nuôi dưỡng",
                    "text": narrative(
                        _lines(row, (("HO_TEN_NND", "Mẹ/người nuôi dưỡng"), ("HO_TEN_CHA", "Cha"))) or "Có"
                    ),
                    "entry": people,
                }
            )
        child = _lines(
            row,
            (
                ("HO_TEN_CON", "Tên con"),
                ("CAN_NANG_CON", "Cân nặng (gram)"),
                ("NOI_SINH_CON", "Nơi sinh"),
                ("TINH_TRANG_CON", "Tình trạng trẻ"),
            ),
        )
        secs.append(
            {
                "title": "Trẻ sơ sinh",
                "text": narrative(child or "Trẻ sơ sinh"),
                "entry": [newborn] + ([weight] if weight else []),
            }
        )
        delivery = _lines(
            row,
            (
                ("SO_CON", "Số con trong lần sinh"),
                ("LAN_SINH", "Lần sinh thứ"),
                ("SO_CON_SONG", "Số con hiện sống"),
                ("SINHCON_PHAUTHUAT", "Sinh con phải phẫu thuật"),
                ("SINHCON_DUOI32TUAN", "Sinh con dưới 32 tuần"),
                ("NGUOI_DO_DE", "Người đỡ đẻ"),
            ),
            yes_no=("SINHCON_PHAUTHUAT", "SINHCON_DUOI32TUAN"),
        )
        if delivery:
            secs.append({"title": "Thông tin cuộc đẻ", "text": narrative(delivery)})
        paper = _lines(row, (("QUYEN_SO", "Quyển số"), ("SO", "Số"), ("GHI_CHU", "Ghi chú")))
        if paper:
            secs.append({"title": "Giấy chứng sinh", "text": narrative(paper)})
        author = {"display": row["NGUOI_GHI_PHIEU"]} if row.get("NGUOI_GHI_PHIEU") else None
        comp = _composition(ctx, "XML9", pos, row, author, None, secs)
        comp["subject"] = newborn
        if row.get("SO"):
            comp["identifier"] = {"system": ctx.idsys("birth_certificate"), "value": row["SO"]}
        ctx.add(comp)


def _rate(ctx: Ctx, pos: int, field: str, label: str, value: str | None) -> dict | None:
    """An impairment rate (tỷ lệ tổn thương cơ thể) in % → Observation."""
    num = _number(ctx, value)
    if num is None:
        return None
    obs: dict = {
        "resourceType": "Observation",
        "id": ctx.rid("Observation", "XML12", pos, field),
        "status": "final",
        "code": local(ctx, "observation", field, label),
        "subject": {"reference": ctx.patient_ref},
        "valueQuantity": {"value": num, "unit": "%", "system": ctx.fx["ucum"], "code": "%"},
    }
    return ctx.add(obs)


def map_assessments(ctx: Ctx, rows: list[dict], raw: list[bytes]) -> None:
    """XML12 rows → DocumentReference (the minutes) + ClinicalImpression with impairment/disability findings."""
    for pos, row in enumerate(rows, start=1):
        chair = row.get("NGUOI_CHU_TRI")
        role = row.get("CHUC_VU")
        assessor = {"display": f"{chair} ({role})" if role else chair} if chair else None
        doc = certificate(
            ctx,
            "XML12",
            pos,
            row,
            raw,
            f"Biên bản giám định y khoa số {row['SO_BIEN_BAN']}" if row.get("SO_BIEN_BAN") else None,
            assessor,
            date_field="NGAY_CHUNG_TU",
            number_fields=("SO_BIEN_BAN",),
            period_fields=("", ""),
        )
        findings = [
            _rate(ctx, pos, f, label, row.get(f))
            for f, label in (
                ("TYLE_TTCT_CU", "Tỷ lệ tổn thương cơ thể lần trước"),
                ("TYLE_TTCT_MOI", "Tỷ lệ tổn thương cơ thể lần này"),
                ("TONG_TYLE_TTCT", "Tổng tỷ lệ tổn thương cơ thể"),
            )
        ]
        for f, key, label in (
            ("DANG_KHUYETTAT", "disability_type", "Dạng khuyết tật"),
            ("MUC_DO_KHUYETTAT", "disability_severity", "Mức độ khuyết tật"),
        ):
            if row.get(f):
                findings.append(
                    ctx.add(
                        {
                            "resourceType": "Observation",
                            "id": ctx.rid("Observation", "XML12", pos, f),
                            "status": "final",
                            "code": local(ctx, "observation", f, label),
                            "subject": {"reference": ctx.patient_ref},
                            "valueCodeableConcept": local(ctx, key, row[f]),
                        }
                    )
                )
        ci: dict = {
            "resourceType": "ClinicalImpression",
            "id": ctx.rid("ClinicalImpression", "XML12", pos),
            "status": "completed",
            "code": local(ctx, "assessment", row.get("KHAM_GIAM_DINH") or "GDYK", "Giám định y khoa"),
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
        }
        met = ctx.when(row.get("NGAY_HOP"))
        if met:
            ci["effectiveDateTime"] = met
            ci["date"] = met
        if assessor:
            ci["assessor"] = assessor
        if row.get("KET_QUA_KHAM"):
            ci["summary"] = row["KET_QUA_KHAM"]
        found = [{"itemReference": f} for f in findings if f]
        if found:
            ci["finding"] = found
        ci["supportingInfo"] = [doc]
        notes = [
            f"{label}: {row[f]}"
            for f, label in (
                ("DANG_HUONG_CHE_DO", "Đang hưởng chế độ"),
                ("DE_NGHI", "Đề nghị"),
                ("DUOC_XACDINH", "Kết luận được xác định"),
            )
            if row.get(f)
        ]
        if notes:
            ci["note"] = [{"text": t} for t in notes]
        ctx.add(ci)
