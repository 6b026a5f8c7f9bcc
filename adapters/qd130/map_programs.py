"""Disease programmes: XML6 (HIV/AIDS care and treatment) and XML15 (tuberculosis treatment).

Both tables describe a patient followed by a national programme rather than one visit, so they become
the programme's view in FHIR:

- the disease as a `Condition` (HIV: SNOMED 86406008 with the confirmation date as assertedDate and the
  WHO clinical stage; TB: SNOMED 56717001 with the NTP classifications — site, treatment history, HIV
  status, bacteriology, resistance — as stages);
- the treatment as a `CarePlan` (ARV: first and current regimen with their lines, switch date and reason,
  days of drugs supplied; other management; TB: kind of treatment, regimen, dates, outcome);
- co-trimoxazole prophylaxis as a `MedicationStatement` (ATC J01EE01);
- test results as `Observation`s (HIV viral load — LOINC from the shipped lab table —, infant PCR, TB
  screening, pregnancy status);
- the registration in the HIV programme as an `EpisodeOfCare` (patient type, key population, status).

One HIV Condition and one CTX MedicationStatement per episode: when XML6 and XML15 both carry them, XML6
(the HIV clinic's table) writes them and XML15's copies are not repeated.
"""

from __future__ import annotations

import re

from mappings.terminology import lab_loinc

from .context import Ctx
from .values import to_number

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_FACILITY = re.compile(r"^[0-9]{2}[0-9A-Z]{3}$")
_LESS = re.compile(r"^\s*(<=?|>=?)\s*([0-9.,]+)\s*$")


def _standard(ctx: Ctx, key: str) -> dict:
    """CodeableConcept of a standard code listed in fhir.yaml `standard_codes` (with its Vietnamese text)."""
    spec = ctx.fx["standard_codes"][key]
    cc: dict = {"coding": [{"system": spec["system"], "code": spec["code"], "display": spec["display"]}]}
    if spec.get("text"):
        cc["text"] = spec["text"]
    return cc


def local(ctx: Ctx, key: str, code: str, text: str | None = None) -> dict:
    """Local QĐ130 coding: with its display when codes.yaml lists the code set, else the code as sent."""
    if key in ctx.codes["maps"]:
        cc = ctx.coded(key, code)
    else:
        cc = {"coding": [{"system": ctx.cs(key), "code": code}]}
    if text:
        cc["text"] = text
    return cc


def _period(ctx: Ctx, start: str | None, end: str | None) -> dict:
    return {k: v for k, v in (("start", ctx.when(start)), ("end", ctx.when(end))) if v}


def _facility_ref(ctx: Ctx, value: str | None) -> dict | None:
    """A facility written as its 5-character code → that facility's Organization; free text → display."""
    if not value:
        return None
    if _FACILITY.match(value.strip()):
        return ctx.org(value.strip())
    return {"display": value}


def _condition(ctx: Ctx, rid: str, code: dict, row_notes: list[str]) -> dict:
    cond: dict = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}],
        "code": code,
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
    }
    if row_notes:
        cond["note"] = [{"text": t} for t in row_notes]
    return cond


def hiv_condition(ctx: Ctx, row: dict) -> dict:
    """The episode's HIV Condition: assertedDate = confirmation date, WHO clinical stage, test places."""
    notes = [
        f"{label}: {row[f]}"
        for f, label in (
            ("NOI_LAY_MAU_XN", "Nơi lấy mẫu xét nghiệm"),
            ("NOI_XN_KD", "Nơi xét nghiệm khẳng định"),
        )
        if row.get(f)
    ]
    cond = _condition(ctx, ctx.rid("Condition", "HIV"), _standard(ctx, "hiv_infection"), notes)
    confirmed = ctx.when(row.get("NGAYKD_HIV"))
    if confirmed:
        cond["extension"] = [{"url": ctx.ext("asserted_date"), "valueDateTime": confirmed}]
    stage = row.get("GIAI_DOAN_LAM_SANG")
    if stage:
        cond["stage"] = [
            {
                "summary": local(ctx, "hiv_clinical_stage", stage, f"Giai đoạn lâm sàng {stage}"),
                "type": {"text": "Giai đoạn lâm sàng HIV/AIDS"},
            }
        ]
    return ctx.add(cond)


def _observation(ctx: Ctx, rid: str, code: dict, category: str | None) -> dict:
    obs: dict = {"resourceType": "Observation", "id": rid, "status": "final"}
    if category:
        obs["category"] = [{"coding": [{"system": OBS_CATEGORY, "code": category}]}]
    obs.update(
        {
            "code": code,
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
        }
    )
    return obs


def _viral_load(ctx: Ctx, row: dict, pos: int) -> dict | None:
    """KQ_XNTL_VR (+ dates, reason) → Observation coded with the lab table's HIV RNA LOINC row."""
    if not any(row.get(f) for f in ("KQ_XNTL_VR", "NGAY_XN_TLVR", "NGAY_KQ_XN_TLVR")):
        return None
    test = lab_loinc(name="HIV RNA")
    code = local(ctx, "hiv_test", "TLVR", "Tải lượng HIV (HIV RNA)")
    if test:
        code["coding"].insert(
            0, {"system": ctx.fx["loinc"], "code": test.loinc_code, "display": test.loinc_long_name}
        )
    obs = _observation(ctx, ctx.rid("Observation", "XML6", pos, "TLVR"), code, "laboratory")
    when = ctx.when(row.get("NGAY_XN_TLVR"))
    if when:
        obs["effectiveDateTime"] = when
    reported = row.get("NGAY_KQ_XN_TLVR")
    if reported and ctx.dt(reported):
        obs["issued"] = ctx.dt(reported)
    elif ctx.when(reported):
        obs["note"] = [{"text": f"Ngày có kết quả: {ctx.when(reported)}"}]
    value = row.get("KQ_XNTL_VR")
    if value:
        obs.update(_copies(ctx, value, test.ucum_unit if test else ""))
    if row.get("MA_LYDO_XNTL_VR"):
        obs["extension"] = [
            {
                "url": ctx.ext("reason_code"),
                "valueCodeableConcept": local(ctx, "viral_load_reason", row["MA_LYDO_XNTL_VR"]),
            }
        ]
    return ctx.add(obs)


def _copies(ctx: Ctx, value: str, ucum: str) -> dict:
    """'1500' / '<20' → valueQuantity in copies/mL (comparator kept); other text ('Không phát hiện') → string."""
    m = _LESS.match(value)
    number, comparator = (m.group(2), m.group(1)) if m else (value, None)
    try:
        num = to_number(number, ctx.vendor)
    except ValueError:
        return {"valueString": value}
    q: dict = {"value": num, "unit": "copies/mL"}
    if comparator:
        q["comparator"] = comparator
    if ucum:
        q.update({"system": ctx.fx["ucum"], "code": ucum})
    return {"valueQuantity": q}


def _pcr(ctx: Ctx, row: dict, pos: int) -> dict | None:
    """Infant early-diagnosis PCR (LAN_XN_PCR, NGAY_XN_PCR, NGAY_KQ_XN_PCR, MA_KQ_XN_PCR) → Observation."""
    if not any(row.get(f) for f in ("MA_KQ_XN_PCR", "NGAY_XN_PCR", "LAN_XN_PCR", "NGAY_KQ_XN_PCR")):
        return None
    code = local(ctx, "hiv_test", "PCR", "Xét nghiệm PCR HIV (chẩn đoán sớm ở trẻ)")
    obs = _observation(ctx, ctx.rid("Observation", "XML6", pos, "PCR"), code, "laboratory")
    when = ctx.when(row.get("NGAY_XN_PCR"))
    if when:
        obs["effectiveDateTime"] = when
    if row.get("MA_KQ_XN_PCR"):
        obs["valueCodeableConcept"] = local(ctx, "pcr_result", row["MA_KQ_XN_PCR"])
    notes = []
    if row.get("LAN_XN_PCR"):
        notes.append(f"Lần xét nghiệm PCR: {row['LAN_XN_PCR']}")
    if ctx.when(row.get("NGAY_KQ_XN_PCR")):
        notes.append(f"Ngày có kết quả: {ctx.when(row['NGAY_KQ_XN_PCR'])}")
    if notes:
        obs["note"] = [{"text": t} for t in notes]
    return ctx.add(obs)


def _screening(ctx: Ctx, row: dict, pos: int) -> dict | None:
    """SANG_LOC_LAO (TB screening of a person living with HIV) → Observation with the local result code."""
    if not row.get("SANG_LOC_LAO"):
        return None
    obs = _observation(
        ctx,
        ctx.rid("Observation", "XML6", pos, "SANG_LOC_LAO"),
        local(ctx, "hiv_test", "SANG_LOC_LAO", "Sàng lọc lao"),
        None,
    )
    obs["valueCodeableConcept"] = local(ctx, "tb_screening", row["SANG_LOC_LAO"])
    return ctx.add(obs)


def _pregnancy(ctx: Ctx, row: dict, pos: int) -> dict | None:
    """NGAY_NHAN_TT_MANG_THAI (date the pregnancy was reported) → pregnancy-status Observation 'pregnant'."""
    when = ctx.when(row.get("NGAY_NHAN_TT_MANG_THAI"))
    if not when:
        return None
    obs = _observation(
        ctx, ctx.rid("Observation", "XML6", pos, "MANG_THAI"), _standard(ctx, "pregnancy_status"), None
    )
    obs["effectiveDateTime"] = when
    obs["valueCodeableConcept"] = _standard(ctx, "pregnant")
    return ctx.add(obs)


def cotrimoxazole(ctx: Ctx, start: str | None, hiv: dict) -> dict | None:
    """Co-trimoxazole prophylaxis started on `start` → MedicationStatement (one per episode)."""
    when = ctx.when(start)
    if not when:
        return None
    return ctx.add(
        {
            "resourceType": "MedicationStatement",
            "id": ctx.rid("MedicationStatement", "CTX"),
            "status": "active",
            "medicationCodeableConcept": _standard(ctx, "cotrimoxazole"),
            "subject": {"reference": ctx.patient_ref},
            "context": {"reference": ctx.encounter_ref},
            "effectivePeriod": {"start": when},
            "reasonReference": [hiv],
        }
    )


def _activity(ctx: Ctx, code: dict, status: str, period: dict, **extra) -> dict:
    detail: dict = {"kind": "MedicationRequest", "code": code, "status": status}
    if period:
        detail["scheduledPeriod"] = period
    detail.update({k: v for k, v in extra.items() if v})
    return {"detail": detail}


def arv_plan(ctx: Ctx, row: dict, table: str, pos: int, hiv: dict) -> dict | None:
    """ARV treatment (start date and place, first and current regimen and line, switch, days supplied) and
    other management (MA_XU_TRI with its dates) → CarePlan addressing the HIV Condition."""
    first, current = row.get("MA_PHAC_DO_DIEU_TRI_BD"), row.get("MA_PHAC_DO_DIEU_TRI")
    started, switched = row.get("BDDT_ARV"), row.get("NGAY_CHUYEN_PHAC_DO")
    activities = []
    if first:
        line = row.get("MA_BAC_PHAC_DO_BD")
        reason = row.get("MA_LYDO_DTRI")
        activities.append(
            _activity(
                ctx,
                local(ctx, "arv_regimen", first, "Phác đồ ARV ban đầu"),
                "completed" if switched else "in-progress",
                _period(ctx, started, switched),
                description=f"Bậc phác đồ ban đầu: {line}" if line else None,
                reasonCode=[local(ctx, "hiv_treatment_reason", reason)] if reason else None,
            )
        )
    if current:
        line, days = row.get("MA_BAC_PHAC_DO"), row.get("SO_NGAY_CAP_THUOC_ARV")
        quantity = None
        if days:
            try:
                quantity = {
                    "value": to_number(days, ctx.vendor),
                    "unit": "ngày",
                    "system": ctx.fx["ucum"],
                    "code": "d",
                }
            except ValueError:
                quantity = None
        why = row.get("LY_DO_CHUYEN_PHAC_DO")
        activities.append(
            _activity(
                ctx,
                local(ctx, "arv_regimen", current, "Phác đồ ARV hiện tại"),
                "in-progress",
                _period(ctx, switched, None),
                description=f"Bậc phác đồ hiện tại: {line}" if line else None,
                quantity=quantity,
                reasonCode=[{"text": f"Lý do chuyển phác đồ: {why}"}] if why else None,
            )
        )
    if row.get("MA_XU_TRI"):
        end = row.get("NGAY_KET_THUC_XU_TRI")
        act = _activity(
            ctx,
            local(ctx, "hiv_management", row["MA_XU_TRI"], "Xử trí"),
            "completed" if end else "in-progress",
            _period(ctx, row.get("NGAY_BAT_DAU_XU_TRI"), end),
        )
        act["detail"]["kind"] = "ServiceRequest"
        activities.append(act)
    if not activities and not started:
        return None
    plan: dict = {
        "resourceType": "CarePlan",
        "id": ctx.rid("CarePlan", table, pos, "ARV"),
        "status": "active",
        "intent": "plan",
        "category": [local(ctx, "care_plan", "ARV", "Điều trị ARV")],
        "title": "Điều trị ARV",
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
        "addresses": [hiv],
    }
    if ctx.when(started):
        plan["period"] = {"start": ctx.when(started)}
    place = _facility_ref(ctx, row.get("NOI_BDDT_ARV"))
    if place:
        plan["contributor"] = [place]
    if row.get("MA_CSKCB"):
        plan["author"] = ctx.org(row["MA_CSKCB"])
    if activities:
        plan["activity"] = activities
    return ctx.add(plan)


def tb_plan(
    ctx: Ctx, row: dict, table: str, pos: int, addresses: list[dict], outcome_field: str
) -> dict | None:
    """TB treatment (LOAI_DTRI_LAO, PHACDO_DTRI_LAO, start/end dates, outcome) → CarePlan."""
    fields = ("LOAI_DTRI_LAO", "PHACDO_DTRI_LAO", "NGAYBD_DTRI_LAO", "NGAYKT_DTRI_LAO", outcome_field)
    if not any(row.get(f) for f in fields):
        return None
    end = row.get("NGAYKT_DTRI_LAO")
    plan: dict = {
        "resourceType": "CarePlan",
        "id": ctx.rid("CarePlan", table, pos, "LAO"),
        "status": "completed" if ctx.when(end) else "active",
        "intent": "plan",
        "category": [local(ctx, "care_plan", "LAO", "Điều trị lao")],
        "title": "Điều trị lao",
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
    }
    if row.get("LOAI_DTRI_LAO"):
        plan["category"].append(local(ctx, "loai_dtri_lao", row["LOAI_DTRI_LAO"]))
    period = _period(ctx, row.get("NGAYBD_DTRI_LAO"), end)
    if period:
        plan["period"] = period
    if row.get("MA_CSKCB") and table == "XML15":
        plan["author"] = ctx.org(row["MA_CSKCB"])
    if addresses:
        plan["addresses"] = addresses
    if row.get("PHACDO_DTRI_LAO") or row.get(outcome_field):
        regimen = row.get("PHACDO_DTRI_LAO")
        code = (
            local(ctx, "tb_regimen", regimen, "Phác đồ điều trị lao")
            if regimen
            else {"text": "Phác đồ điều trị lao"}
        )
        act = _activity(ctx, code, "completed" if ctx.when(end) else "in-progress", period)
        if row.get(outcome_field):
            act["outcomeCodeableConcept"] = [local(ctx, "tb_outcome", row[outcome_field])]
        plan["activity"] = [act]
    return ctx.add(plan)


def map_hiv_care(ctx: Ctx, rows: list[dict]) -> None:
    """XML6 rows → HIV Condition, EpisodeOfCare, tests, pregnancy status, ARV and TB CarePlans, CTX."""
    for pos, row in enumerate(rows, start=1):
        hiv = hiv_condition(ctx, row)
        episode: dict = {
            "resourceType": "EpisodeOfCare",
            "id": ctx.rid("EpisodeOfCare", "XML6", pos),
            "status": "active",
            "type": [local(ctx, "care_plan", "HIV", "Chăm sóc và điều trị HIV/AIDS")],
            "diagnosis": [{"condition": hiv, "rank": 1}],
            "patient": {"reference": ctx.patient_ref},
        }
        if row.get("MA_LOAI_BN"):
            episode["type"].append(local(ctx, "hiv_patient_type", row["MA_LOAI_BN"]))
        exts = [
            {"url": ctx.ext(key), "valueCodeableConcept": local(ctx, key, row[f])}
            for key, f in (
                ("hiv_key_population", "NHOM_DOI_TUONG"),
                ("hiv_registration_status", "MA_TINH_TRANG_DK"),
            )
            if row.get(f)
        ]
        if exts:
            episode["extension"] = exts
        if row.get("MA_CSKCB"):
            episode["managingOrganization"] = ctx.org(row["MA_CSKCB"])
        ctx.add(episode)
        _viral_load(ctx, row, pos)
        _pcr(ctx, row, pos)
        _screening(ctx, row, pos)
        _pregnancy(ctx, row, pos)
        arv_plan(ctx, row, "XML6", pos, hiv)
        tb_plan(ctx, row, "XML6", pos, [], "KQ_DTRI_LAO")
        cotrimoxazole(ctx, row.get("NGAY_BAT_DAU_DT_CTX"), hiv)


_TB_AXES = (
    ("PHANLOAI_LAO_VITRI", "phanloai_lao_vitri", "Phân loại theo vị trí giải phẫu"),
    ("PHANLOAI_LAO_TS", "phanloai_lao_ts", "Phân loại theo tiền sử điều trị"),
    ("PHANLOAI_LAO_HIV", "phanloai_lao_hiv", "Phân loại theo tình trạng HIV"),
    ("PHANLOAI_LAO_VK", "phanloai_lao_vk", "Phân loại theo bằng chứng vi khuẩn học"),
    ("PHANLOAI_LAO_KT", "phanloai_lao_kt", "Phân loại theo tình trạng kháng thuốc"),
)


def map_tb_treatment(ctx: Ctx, rows: list[dict], with_hiv_table: bool) -> None:
    """XML15 rows → TB Condition (classifications as stages), TB CarePlan; the HIV dates too when the record
    has no XML6 (a TB clinic reporting a co-infected patient)."""
    for pos, row in enumerate(rows, start=1):
        key = row.get("STT") or pos
        addresses = []
        axes = [(f, m, label) for f, m, label in _TB_AXES if row.get(f)]
        if axes:
            code = _standard(ctx, "tuberculosis")
            site = row.get("PHANLOAI_LAO_VITRI")
            site_name = (
                ctx.code_map("phanloai_lao_vitri")["codes"].get(site, {}).get("display") if site else None
            )
            if site_name:
                code["text"] = site_name
            cond = _condition(ctx, ctx.rid("Condition", "XML15", key), code, [])
            cond["stage"] = [
                {"summary": local(ctx, m, row[f]), "type": {"text": label}} for f, m, label in axes
            ]
            addresses.append(ctx.add(cond))
        tb_plan(ctx, row, "XML15", key, addresses, "KET_QUA_DTRI_LAO")
        if with_hiv_table or not any(row.get(f) for f in ("NGAYKD_HIV", "BDDT_ARV", "NGAY_BAT_DAU_DT_CTX")):
            continue
        hiv = hiv_condition(ctx, row)
        if row.get("BDDT_ARV"):
            arv_plan(ctx, {"BDDT_ARV": row["BDDT_ARV"]}, "XML15", key, hiv)
        cotrimoxazole(ctx, row.get("NGAY_BAT_DAU_DT_CTX"), hiv)
