"""One person (TRẦN THỊ HOA) seen at three hospitals, as a doctor receiving a referral would find her record.

Chợ Rẫy sends named Organizations; Bạch Mai and Bắc Kạn send only their MA_CSKCB (as QĐ130 does), so their
names must come from the facility registry. Dates of re-exams and card validity are relative to `now`, so
the summary's "upcoming" and "valid" do not depend on the day the test runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.ids import deterministic_id
from fhir_server.interactions import bundles

MRN = "http://fhir.hl7.org.vn/core/sid/mrn"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"
CSKCB = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"

HOSPITALS = {  # facility code -> (Organization id, name sent or None)
    "79001": ("org-cho-ray", "Bệnh viện Chợ Rẫy"),
    "01001": ("org-01001", None),  # Bệnh viện Bạch Mai, by the registry
    "06001": ("org-06001", None),  # Bệnh viện Đa khoa tỉnh Bắc Kạn, by the registry
}
PATIENTS = {code: deterministic_id("Patient", code, f"BN-HOA-{code}") for code in HOSPITALS}
MAIN = PATIENTS["06001"]  # the record at the hospital the doctor works at


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _patient(code: str) -> dict:
    org, _ = HOSPITALS[code]
    return {
        "resourceType": "Patient",
        "id": PATIENTS[code],
        "identifier": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": f"{MRN}/{code}",
                "value": f"BN-HOA-{code}",
            },
            {"system": CCCD, "value": "001185004321"},
            {"system": BHYT, "value": "HT2010185004321"},
        ],
        "name": [{"use": "official", "text": "TRẦN THỊ HOA", "family": "TRẦN", "given": ["THỊ", "HOA"]}],
        "gender": "female",
        "birthDate": "1985-03-08",
        "managingOrganization": {"reference": f"Organization/{org}"},
    }


def _encounter(
    eid: str, code: str, klass: str, start: str, end: str, diagnoses: list[tuple[str, str]]
) -> dict:
    org, _ = HOSPITALS[code]
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": f"Patient/{PATIENTS[code]}"},
        "serviceProvider": {"reference": f"Organization/{org}"},
        "period": {"start": start, "end": end},
        "diagnosis": [
            {
                "condition": {"reference": f"Condition/{cid}"},
                "use": {"coding": [{"system": ROLE, "code": use}]},
            }
            for cid, use in diagnoses
        ],
    }


def _condition(cid: str, code: str, enc: str, icd: str, when: str, text: str | None = None) -> dict:
    c = {
        "resourceType": "Condition",
        "id": cid,
        "code": {"coding": [{"system": ICD10, "code": icd}], "text": text or icd},
        "subject": {"reference": f"Patient/{PATIENTS[code]}"},
        "encounter": {"reference": f"Encounter/{enc}"},
        "recordedDate": when,
    }
    return c


def _vital(oid: str, code: str, enc: str, when: str, loinc: str, value: float, unit: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{PATIENTS[code]}"},
        "encounter": {"reference": f"Encounter/{enc}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _bp(oid: str, code: str, enc: str, when: str, sys_v: int, dia_v: int) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": f"Patient/{PATIENTS[code]}"},
        "encounter": {"reference": f"Encounter/{enc}"},
        "effectiveDateTime": when,
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": sys_v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": dia_v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            },
        ],
    }


def _lab(
    oid: str,
    code: str,
    enc: str,
    when: str,
    loinc: str,
    text: str | None,
    value: float,
    unit: str,
    low=None,
    high=None,
) -> dict:
    o = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}], **({"text": text} if text else {})},
        "subject": {"reference": f"Patient/{PATIENTS[code]}"},
        "encounter": {"reference": f"Encounter/{enc}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit},
    }
    if low is not None or high is not None:
        rng = {}
        if low is not None:
            rng["low"] = {"value": low, "unit": unit}
        if high is not None:
            rng["high"] = {"value": high, "unit": unit}
        o["referenceRange"] = [rng]
    return o


def resources(now: datetime, allergy: bool = True) -> list[dict]:
    """All resources of the scenario; `allergy=False` leaves out her penicillin allergy."""
    out: list[dict] = []
    for code, (org, name) in HOSPITALS.items():
        o = {"resourceType": "Organization", "id": org, "identifier": [{"system": CSKCB, "value": code}]}
        if name:
            o["name"] = name
        out.append(o)
        out.append(_patient(code))
    out.append(
        {"resourceType": "Practitioner", "id": "bs-pham-minh-duc", "name": [{"text": "PHẠM MINH ĐỨC"}]}
    )
    out.append({"resourceType": "Practitioner", "id": "bs-do-thu-trang", "name": [{"text": "ĐỖ THU TRANG"}]})
    # 1. Chợ Rẫy, outpatient visit, March 2024: diabetes found, glucose high
    out += [
        _encounter(
            "enc-cr-1",
            "79001",
            "AMB",
            "2024-03-01T08:00:00+07:00",
            "2024-03-01T10:00:00+07:00",
            [("cd-cr-e11", "DD"), ("cd-cr-r73", "AD"), ("cd-cr-i10", "CM")],
        ),
        _condition(
            "cd-cr-e11", "79001", "enc-cr-1", "E11.9", "2024-03-01T10:00:00+07:00", "Đái tháo đường type 2"
        ),
        _condition("cd-cr-r73", "79001", "enc-cr-1", "R73.9", "2024-03-01T10:00:00+07:00"),
        _condition("cd-cr-i10", "79001", "enc-cr-1", "I10", "2024-03-01T10:00:00+07:00"),
        _lab(
            "lab-cr-glu",
            "79001",
            "enc-cr-1",
            "2024-03-01T08:30:00+07:00",
            "14749-6",
            "Glucose máu lúc đói",
            9.4,
            "mmol/L",
            3.9,
            6.4,
        ),
        _lab(
            "lab-cr-cre",
            "79001",
            "enc-cr-1",
            "2024-03-01T08:30:00+07:00",
            "14682-9",
            "Creatinin",
            88,
            "µmol/L",
            53,
            100,
        ),
        _vital("v-cr-hr", "79001", "enc-cr-1", "2024-03-01T08:05:00+07:00", "8867-4", 88, "/min"),
        _vital("v-cr-t", "79001", "enc-cr-1", "2024-03-01T08:05:00+07:00", "8310-5", 36.8, "Cel"),
        _bp("v-cr-bp", "79001", "enc-cr-1", "2024-03-01T08:05:00+07:00", 150, 95),
        _vital("v-cr-w", "79001", "enc-cr-1", "2024-03-01T08:05:00+07:00", "29463-7", 62, "kg"),
        {
            "resourceType": "MedicationRequest",
            "id": "mr-cr-metformin",
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Metformin 500mg"},
            "subject": {"reference": f"Patient/{PATIENTS['79001']}"},
            "encounter": {"reference": "Encounter/enc-cr-1"},
            "authoredOn": "2024-03-01T09:30:00+07:00",
            "dosageInstruction": [{"text": "1 viên x 2 lần/ngày"}],
        },
    ]
    # 2. Bạch Mai, an 8-day stay in September 2024: progress notes, a case conference, discharge paper
    out += [
        _encounter(
            "enc-bm-1",
            "01001",
            "IMP",
            "2024-09-10T09:00:00+07:00",
            "2024-09-18T10:00:00+07:00",
            [("cd-bm-e11", "DD"), ("cd-bm-n18", "CM"), ("cd-bm-ad", "AD")],
        ),
        _condition("cd-bm-e11", "01001", "enc-bm-1", "E11.9", "2024-09-18T10:00:00+07:00"),
        _condition("cd-bm-n18", "01001", "enc-bm-1", "N18.3", "2024-09-18T10:00:00+07:00"),
        _condition("cd-bm-ad", "01001", "enc-bm-1", "E11.6", "2024-09-10T09:00:00+07:00"),
        _lab(
            "lab-bm-glu",
            "01001",
            "enc-bm-1",
            "2024-09-10T10:00:00+07:00",
            "14749-6",
            None,
            7.1,
            "mmol/L",
            3.9,
            6.4,
        ),
        _lab(
            "lab-bm-cre",
            "01001",
            "enc-bm-1",
            "2024-09-10T10:00:00+07:00",
            "14682-9",
            None,
            135,
            "µmol/L",
            53,
            100,
        ),
        _lab(
            "lab-bm-hb", "01001", "enc-bm-1", "2024-09-10T10:00:00+07:00", "718-7", None, 105, "g/L", 120, 150
        ),
        _bp("v-bm-bp1", "01001", "enc-bm-1", "2024-09-10T09:10:00+07:00", 160, 100),
        _vital("v-bm-hr1", "01001", "enc-bm-1", "2024-09-10T09:10:00+07:00", "8867-4", 96, "/min"),
        _vital("v-bm-spo2", "01001", "enc-bm-1", "2024-09-10T09:10:00+07:00", "59408-5", 95, "%"),
        _bp("v-bm-bp2", "01001", "enc-bm-1", "2024-09-17T08:00:00+07:00", 135, 85),
        _vital("v-bm-hr2", "01001", "enc-bm-1", "2024-09-17T08:00:00+07:00", "8867-4", 80, "/min"),
        _vital("v-bm-t2", "01001", "enc-bm-1", "2024-09-17T08:00:00+07:00", "8310-5", 37.2, "Cel"),
        {
            "resourceType": "ClinicalImpression",
            "id": "ci-bm-day3",
            "status": "completed",
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "effectiveDateTime": "2024-09-12T09:00:00+07:00",
            "assessor": {"reference": "Practitioner/bs-pham-minh-duc"},
            "description": "Ngày 3: tỉnh, đường huyết mao mạch 8–10 mmol/L, phù nhẹ hai chi dưới.",
            "note": [
                {"text": "Hội chẩn: Hội chẩn khoa Thận, thống nhất chỉnh liều insulin, theo dõi creatinin."}
            ],
        },
        {
            "resourceType": "ClinicalImpression",
            "id": "ci-bm-conclusion",
            "status": "completed",
            "code": {"text": "Kết luận đợt điều trị"},
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "effectiveDateTime": "2024-09-18T10:00:00+07:00",
            "assessor": {"reference": "Practitioner/bs-pham-minh-duc"},
            "description": "Chẩn đoán ra viện: Đái tháo đường type 2, bệnh thận mạn giai đoạn 3",
            "note": [
                {"text": "Lời dặn của bác sĩ: ăn giảm muối, tái khám sau 1 tháng, mang theo sổ đường huyết."}
            ],
        },
        {
            "resourceType": "Composition",
            "id": "comp-bm-rv",
            "status": "final",
            "type": {"text": "Giấy ra viện"},
            "title": "Giấy ra viện",
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "date": "2024-09-18",
            "author": [{"reference": "Practitioner/bs-pham-minh-duc"}],
            "custodian": {"reference": "Organization/org-01001"},
            "section": [
                {
                    "title": "Phương pháp điều trị",
                    "text": {
                        "status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Insulin nền, kiểm soát huyết áp</div>',
                    },
                }
            ],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "mr-bm-insulin",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Insulin glargine 100 UI/ml"},
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "authoredOn": "2024-09-18T09:00:00+07:00",
            "dosageInstruction": [{"text": "14 UI tiêm dưới da buổi tối"}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "mr-bm-amlodipin",
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Amlodipin 5mg"},
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "authoredOn": "2024-09-18T09:00:00+07:00",
            "dosageInstruction": [{"text": "1 viên buổi sáng"}],
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr-bm-referral",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "3457005"}],
                "text": "Chuyển tuyến",
            },
            "subject": {"reference": f"Patient/{PATIENTS['01001']}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "authoredOn": "2024-09-18T10:00:00+07:00",
            "requester": {"reference": "Organization/org-01001"},
            "performer": [{"reference": "Organization/org-06001"}],
            "reasonCode": [{"coding": [{"system": ICD10, "code": "N18.3"}]}],
            "identifier": [{"system": "urn:vn:cskcb:01001:giay-chuyen-tuyen", "value": "CT-2024-0918"}],
        },
    ]
    # 3. Bắc Kạn, outpatient follow-up recently: glucose again, weight
    recent = now - timedelta(days=20)
    start, end = _iso(recent), _iso(recent + timedelta(hours=2))
    out += [
        _encounter("enc-bk-1", "06001", "AMB", start, end, [("cd-bk-e11", "DD")]),
        _condition("cd-bk-e11", "06001", "enc-bk-1", "E11.9", end),
        _lab(
            "lab-bk-glu",
            "06001",
            "enc-bk-1",
            _iso(recent + timedelta(minutes=30)),
            "14749-6",
            "Glucose",
            6.0,
            "mmol/L",
            3.9,
            6.4,
        ),
        _bp("v-bk-bp", "06001", "enc-bk-1", _iso(recent + timedelta(minutes=5)), 130, 80),
        _vital("v-bk-hr", "06001", "enc-bk-1", _iso(recent + timedelta(minutes=5)), "8867-4", 76, "/min"),
        _vital("v-bk-w", "06001", "enc-bk-1", _iso(recent + timedelta(minutes=5)), "29463-7", 60.5, "kg"),
        {
            "resourceType": "Appointment",
            "id": "ap-bk-taikham",
            "status": "booked",
            "description": "Hẹn tái khám",
            "start": _iso(now + timedelta(days=10)),
            "participant": [{"actor": {"reference": f"Patient/{PATIENTS['06001']}"}, "status": "accepted"}],
            "identifier": [{"system": "urn:vn:cskcb:06001:giay-hen-kham-lai", "value": "HK-77"}],
        },
        {
            "resourceType": "Coverage",
            "id": "cov-hoa",
            "status": "active",
            "subscriberId": "HT2010185004321",
            "beneficiary": {"reference": f"Patient/{PATIENTS['06001']}"},
            "payor": [{"reference": "Organization/org-06001"}],
            "period": {"start": f"{now.year - 1}-01-01", "end": f"{now.year + 1}-12-31"},
        },
    ]
    if allergy:
        out.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": "al-penicillin",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "type": "allergy",
                "category": ["medication"],
                "criticality": "high",
                "code": {"text": "Penicillin"},
                "patient": {"reference": f"Patient/{PATIENTS['79001']}"},
                "recordedDate": "2024-03-01",
                "reaction": [{"manifestation": [{"text": "Phát ban, khó thở"}]}],
            }
        )
    return out


def load_and_link(store, now: datetime, allergy: bool = True) -> None:
    """Store the scenario in one transaction Bundle and link the three Patient records."""
    from fhir_server.identity.service import link_all

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources(now, allergy)
        ],
    }
    bundles.transaction(store, bundle)
    link_all(store)
