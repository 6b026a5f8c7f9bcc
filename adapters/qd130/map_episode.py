"""XML1 (TONG_HOP) → Patient, Coverage, Encounter, Conditions, body-weight/blood-group Observations."""

from __future__ import annotations

import datetime as dt

from adapters.address import enrich
from adapters.ids import deterministic_id
from adapters.names import human_name

from .context import V2_0203, Ctx
from .values import to_birth, to_number

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _split(v: str | None) -> list[str]:
    """`;`-separated list → stripped non-empty items."""
    return [x.strip() for x in v.split(";") if x.strip()] if v else []


def map_patient(ctx: Ctx, row: dict) -> dict:
    """Patient of this facility (id from facility + MA_BN): identifiers, name, birth, address, extensions."""
    pid = deterministic_id("Patient", ctx.facility, row["MA_BN"])
    org = ctx.org()
    idents = [
        {
            "use": "usual",
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": f"{ctx.idsys('mrn')}/{ctx.facility}",
            "value": row["MA_BN"],
            "assigner": org,
        }
    ]
    cccd = row.get("SO_CCCD")
    if cccd:
        kind, tcode = (
            ("passport", "PPN")
            if not cccd.isdigit()
            else (("cccd", "NI") if len(cccd) == 12 else ("cmnd", "NI"))
        )
        idents.append(
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": tcode}]},
                "system": ctx.idsys(kind),
                "value": cccd,
            }
        )
    for card in _split(row.get("MA_THE_BHYT")):
        idents.append(
            {
                "use": "secondary",
                "type": {"coding": [{"system": V2_0203, "code": "SB"}]},
                "system": ctx.idsys("bhyt"),
                "value": card,
            }
        )
    pat: dict = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": idents,
        "active": True,
        "name": [human_name(row["HO_TEN"])],
    }
    phone = row.get("DIEN_THOAI")
    if phone:
        pat["telecom"] = [{"system": "phone", "value": phone}]
    g = row.get("GIOI_TINH")
    gmap = ctx.code_map("gioi_tinh")
    pat["gender"] = gmap["codes"].get(g, gmap["default"])["target"]
    try:
        bdate, btime = to_birth(row["NGAY_SINH"])
        pat["birthDate"] = bdate
        if btime:
            pat["_birthDate"] = {"extension": [{"url": ctx.ext("birth_time"), "valueDateTime": btime}]}
    except ValueError:
        pass
    addr = _address(ctx, row)
    if addr:
        pat["address"] = [addr]
    exts = []
    if row.get("MA_DANTOC"):
        exts.append(
            {
                "url": ctx.ext("ethnicity"),
                "valueCodeableConcept": {
                    "coding": [{"system": ctx.ps["code_systems"]["ethnicity"], "code": row["MA_DANTOC"]}]
                },
            }
        )
    if row.get("MA_QUOCTICH"):
        cc = {"coding": [{"system": ctx.cs("nationality"), "code": row["MA_QUOCTICH"]}]}
        url = ctx.ext("nationality")
        if url.endswith("/patient-nationality"):  # core extension is complex (code + period)
            exts.append({"url": url, "extension": [{"url": "code", "valueCodeableConcept": cc}]})
        else:
            exts.append({"url": url, "valueCodeableConcept": cc})
    if row.get("MA_NGHE_NGHIEP"):
        exts.append(
            {
                "url": ctx.ext("occupation"),
                "valueCodeableConcept": {
                    "coding": [{"system": ctx.cs("occupation"), "code": row["MA_NGHE_NGHIEP"]}]
                },
            }
        )
    if exts:
        pat["extension"] = exts
    pat["managingOrganization"] = org
    ref = ctx.add(pat)
    ctx.patient_ref = ref["reference"]
    return ref


def _address(ctx: Ctx, row: dict) -> dict | None:
    """Address text as sent, plus unit names and both eras' codes (adapters/address.py)."""
    text = row.get("DIA_CHI")
    fields = ("MATINH_CU_TRU", "MAHUYEN_CU_TRU", "MAXA_CU_TRU")
    if not text and not any(row.get(f) for f in fields):
        return None
    addr: dict = {"use": "home"}
    if text:
        addr["text"] = text
    on = _visit_date(ctx, row)
    enrich(addr, ctx.ps.get("extensions", {}), *(row.get(f) for f in fields), on=on)
    addr["country"] = "VN"
    return addr


def _visit_date(ctx: Ctx, row: dict) -> dt.date | None:
    """The visit's date (NGAY_VAO), which decides the era of the address codes; None when absent."""
    value = ctx.date((row.get("NGAY_VAO") or "")[:8])
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def map_coverages(ctx: Ctx, row: dict, patient: dict) -> list[dict]:
    """One Coverage per BHYT card (`;`-lists are parallel: card, MA_DKBD, GT_THE_TU, GT_THE_DEN)."""
    cards = _split(row.get("MA_THE_BHYT"))
    dkbd, tu, den = _split(row.get("MA_DKBD")), _split(row.get("GT_THE_TU")), _split(row.get("GT_THE_DEN"))
    refs = []
    for i, card in enumerate(cards):
        cov: dict = {
            "resourceType": "Coverage",
            "id": deterministic_id("Coverage", ctx.facility, row["MA_BN"], card),
            "identifier": [{"system": ctx.idsys("bhyt"), "value": card}],
            "status": "active",
            "subscriberId": card,
            "beneficiary": patient,
            "payor": [ctx.payor()],
        }
        period = {}
        if i < len(tu) and ctx.date(tu[i]):
            period["start"] = ctx.date(tu[i])
        if i < len(den) and ctx.date(den[i]):
            period["end"] = ctx.date(den[i])
        if period:
            cov["period"] = period
        if len(card) == 15 and card[:2].isalpha():
            cov["class"] = [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                "code": "group",
                            }
                        ]
                    },
                    "value": card[:2],
                },
                {
                    "type": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}
                        ]
                    },
                    "value": card[2],
                },
            ]
        exts = []
        if i < len(dkbd):
            exts.append(
                {
                    "url": ctx.ext("registered_facility"),
                    "valueIdentifier": {"system": ctx.idsys("facility"), "value": dkbd[i]},
                }
            )
        if row.get("MA_KHUVUC"):
            exts.append({"url": ctx.ext("area"), "valueCode": row["MA_KHUVUC"]})
        if exts:
            cov["extension"] = exts
        refs.append(ctx.add(cov))
    return refs


def map_conditions(ctx: Ctx, row: dict) -> list[tuple[dict, str, int]]:
    """Main + secondary ICD-10 diagnoses (YHCT codes as parallel codings) and the admission diagnosis."""
    yhct = _split(row.get("MA_BENH_YHCT"))
    codes = ([row["MA_BENH_CHINH"]] if row.get("MA_BENH_CHINH") else []) + _split(row.get("MA_BENH_KT"))
    out = []
    recorded = ctx.dt(row.get("NGAY_RA")) or ctx.dt(row.get("NGAY_VAO"))
    # CHAN_DOAN_RV lists the diagnoses' names in code order ("Viêm mũi họng cấp; Viêm mũi dị ứng"): each
    # Condition gets its own name when the counts agree; otherwise the whole text is kept as a note on the
    # main diagnosis rather than attributed to it as its name.
    texts = _split(row.get("CHAN_DOAN_RV"))
    aligned = len(texts) == len(codes)
    for rank, code in enumerate(codes, start=1):
        coding = [ctx.dx_coding(code)]
        if rank - 1 < len(yhct):
            coding.append({"system": ctx.cs("yhct"), "code": yhct[rank - 1]})
        cond = {
            "resourceType": "Condition",
            "id": ctx.rid("Condition", "XML1", "dx", code),
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                            "display": "Encounter Diagnosis",
                        }
                    ]
                }
            ],
            "code": {"coding": coding},
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
        }
        if aligned:
            cond["code"]["text"] = texts[rank - 1]
        elif rank == 1 and row.get("CHAN_DOAN_RV"):
            cond["note"] = [{"text": f"Chẩn đoán ra viện: {row['CHAN_DOAN_RV']}"}]
        if recorded:
            cond["recordedDate"] = recorded
        out.append((ctx.add(cond), "DD" if rank == 1 else "CM", rank))
    if row.get("CHAN_DOAN_VAO"):
        cond = {
            "resourceType": "Condition",
            "id": ctx.rid("Condition", "XML1", "admission"),
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "provisional",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                            "display": "Encounter Diagnosis",
                        }
                    ]
                }
            ],
            "code": {"text": row["CHAN_DOAN_VAO"]},
            "subject": {"reference": ctx.patient_ref},
            "encounter": {"reference": ctx.encounter_ref},
        }
        if ctx.dt(row.get("NGAY_VAO")):
            cond["recordedDate"] = ctx.dt(row.get("NGAY_VAO"))
        out.append((ctx.add(cond), "AD", len(codes) + 1))
    ctx.condition_refs = [r for r, use, _ in out if use != "AD"]
    return out


def map_encounter(ctx: Ctx, row: dict, diagnoses: list[tuple[dict, str, int]]) -> dict:
    """Encounter: identifiers, class/type, period, reasons, diagnoses, referral origin/destination, outcome."""
    kcb = row.get("MA_LOAI_KCB", "")
    if len(kcb) == 1 and kcb.isdigit():  # pre-4750 files carry "1", "2"…
        kcb = "0" + kcb
    ctx.kcb = kcb
    cmap = ctx.code_map("ma_loai_kcb")
    target = cmap["codes"].get(kcb, cmap["default"])
    enc: dict = {
        "resourceType": "Encounter",
        "id": ctx.encounter_ref.split("/")[1],
        "identifier": [
            {"use": "official", "system": ctx.idsys("episode"), "value": row["MA_LK"], "assigner": ctx.org()}
        ],
        "status": "finished" if row.get("NGAY_RA") else "in-progress",
        "class": {"system": ACT, "code": target["target"], "display": target["target_display"]},
    }
    if row.get("MA_HSBA"):
        enc["identifier"].append(
            {
                "use": "secondary",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": ctx.idsys("hsba"),
                "value": row["MA_HSBA"],
            }
        )
    if kcb:
        enc["type"] = [ctx.coded("ma_loai_kcb", kcb)]
    enc["subject"] = {"reference": ctx.patient_ref}
    period = {}
    if ctx.dt(row.get("NGAY_VAO")):
        period["start"] = ctx.dt(row["NGAY_VAO"])
    if ctx.dt(row.get("NGAY_RA")):
        period["end"] = ctx.dt(row["NGAY_RA"])
    if period:
        enc["period"] = period
    vnt = ctx.dt(row.get("NGAY_VAO_NOI_TRU"))
    if vnt and period.get("start"):
        # Arrival → inpatient admission order: the class changed during the episode.
        enc["classHistory"] = [
            {"class": {"system": ACT, "code": "AMB"}, "period": {"start": period["start"], "end": vnt}},
            {
                "class": {"system": ACT, "code": target["target"]},
                "period": {k: v for k, v in (("start", vnt), ("end", period.get("end"))) if v},
            },
        ]
    days = row.get("SO_NGAY_DTRI")
    if days:
        try:
            enc["length"] = {
                "value": to_number(days, ctx.vendor),
                "unit": "d",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
        except ValueError:
            pass
    reasons = []
    if row.get("LY_DO_VV"):
        reasons.append({"text": row["LY_DO_VV"]})
    if row.get("LY_DO_VNT") or row.get("MA_LY_DO_VNT"):
        r: dict = {}
        if row.get("MA_LY_DO_VNT"):
            r["coding"] = [
                {"system": ctx.ps["code_systems"]["qd130"] + "/ma-ly-do-vnt", "code": row["MA_LY_DO_VNT"]}
            ]
        if row.get("LY_DO_VNT"):
            r["text"] = row["LY_DO_VNT"]
        reasons.append(r)
    if reasons:
        enc["reasonCode"] = reasons
    if diagnoses:
        role = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
        enc["diagnosis"] = [
            {"condition": ref, "use": {"coding": [{"system": role, "code": use}]}, "rank": rank}
            for ref, use, rank in diagnoses
        ]
    hosp: dict = {}
    if row.get("MA_NOI_DI"):
        hosp["origin"] = ctx.org(row["MA_NOI_DI"])
        hosp["admitSource"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/admit-source", "code": "hosp-trans"}]
        }
    if row.get("MA_NOI_DEN"):
        hosp["destination"] = ctx.org(row["MA_NOI_DEN"])
    rv = row.get("MA_LOAI_RV")
    if rv:
        cc = ctx.coded("ma_loai_rv", rv)
        t = ctx.code_map("ma_loai_rv")["codes"].get(rv)
        if t:
            cc["coding"].append(
                {
                    "system": ctx.code_map("ma_loai_rv")["target"],
                    "code": t["target"],
                    "display": t["target_display"],
                }
            )
        hosp["dischargeDisposition"] = cc
    if hosp:
        enc["hospitalization"] = hosp
    if row.get("GIAY_CHUYEN_TUYEN") and row.get("MA_NOI_DI"):
        # The referral paper was issued by the sending facility: a logical reference to its ServiceRequest.
        enc["basedOn"] = [
            {
                "type": "ServiceRequest",
                "identifier": {
                    "system": ctx.idsys("referral", row["MA_NOI_DI"]),
                    "value": row["GIAY_CHUYEN_TUYEN"],
                },
            }
        ]
    locs = _split(row.get("MA_KHOA"))
    if locs:
        enc["location"] = [{"location": ctx.location(k), "status": "completed"} for k in locs]
    enc["serviceProvider"] = ctx.org()
    exts = []
    if row.get("KET_QUA_DTRI"):
        exts.append(
            {
                "url": ctx.ext("treatment_outcome"),
                "valueCodeableConcept": ctx.coded("ket_qua_dtri", row["KET_QUA_DTRI"]),
            }
        )
    # QĐ130 codes carried as they are, in the Ministry's code systems (no FHIR equivalent).
    for ext, field, code_system in (
        ("patient_category", "MA_DOITUONG_KCB", "ma-doituong-kcb"),
        ("accident", "MA_TAI_NAN", "ma-tai-nan"),
    ):
        if row.get(field):
            system = ctx.ps["code_systems"]["qd130"] + "/" + code_system
            exts.append({"url": ctx.ext(ext), "valueCoding": {"system": system, "code": row[field]}})
    if exts:
        enc["extension"] = exts
    return ctx.add(enc)


def map_xml1_observations(ctx: Ctx, row: dict) -> None:
    """Body weight (CAN_NANG, kg) and blood group (NHOM_MAU) as Observations."""
    when = ctx.dt(row.get("NGAY_VAO"))
    loinc = ctx.fx["loinc"]
    base = {
        "status": "final",
        "subject": {"reference": ctx.patient_ref},
        "encounter": {"reference": ctx.encounter_ref},
    }
    if when:
        base["effectiveDateTime"] = when
    if row.get("CAN_NANG"):
        try:
            kg = to_number(row["CAN_NANG"], ctx.vendor)
        except ValueError:
            kg = None
        if kg is not None and kg > 0:
            ctx.add(
                {
                    "resourceType": "Observation",
                    "id": ctx.rid("Observation", "XML1", "CAN_NANG"),
                    **base,
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {"coding": [{"system": loinc, "code": "29463-7", "display": "Body weight"}]},
                    "valueQuantity": {"value": kg, "unit": "kg", "system": ctx.fx["ucum"], "code": "kg"},
                }
            )
    if row.get("NHOM_MAU"):
        ctx.add(
            {
                "resourceType": "Observation",
                "id": ctx.rid("Observation", "XML1", "NHOM_MAU"),
                **base,
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {"system": loinc, "code": "882-1", "display": "ABO and Rh group [Type] in Blood"}
                    ]
                },
                "valueCodeableConcept": {
                    "coding": [{"system": ctx.cs("blood_group"), "code": row["NHOM_MAU"]}],
                    "text": row["NHOM_MAU"],
                },
            }
        )
