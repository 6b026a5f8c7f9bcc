"""One person seen at two hospitals (Chợ Rẫy, then Bạch Mai) plus an unrelated patient, as FHIR resources."""

from __future__ import annotations

from adapters.ids import deterministic_id
from fhir_server.interactions import bundles

MRN = "http://fhir.hl7.org.vn/core/sid/mrn"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"
CSKCB = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LAB = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]
}

PA = deterministic_id("Patient", "79001", "BN000123")  # the person's record at Chợ Rẫy
PB = deterministic_id("Patient", "01001", "BM-556677")  # the same person's record at Bạch Mai
PC = deterministic_id("Patient", "79001", "BN000999")  # somebody else


def _patient(pid: str, facility: str, mrn: str, name: str, cccd: str, bhyt: str | None, org: str) -> dict:
    family, *given = name.split()
    idents = [
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": f"{MRN}/{facility}",
            "value": mrn,
            "assigner": {"reference": f"Organization/{org}"},
        },
        {"system": CCCD, "value": cccd},
    ]
    if bhyt:
        idents.append({"system": BHYT, "value": bhyt})
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": idents,
        "name": [{"use": "official", "text": name, "family": family, "given": given}],
        "gender": "male",
        "birthDate": "1990-05-15",
        "managingOrganization": {"reference": f"Organization/{org}"},
    }


def resources() -> list[dict]:
    """All resources of the scenario (ids fixed, references relative)."""
    out = [
        {
            "resourceType": "Organization",
            "id": "org-cho-ray",
            "name": "Bệnh viện Chợ Rẫy",
            "identifier": [{"system": CSKCB, "value": "79001"}],
        },
        {
            "resourceType": "Organization",
            "id": "org-bach-mai",
            "name": "Bệnh viện Bạch Mai",
            "identifier": [{"system": CSKCB, "value": "01001"}],
        },
        {"resourceType": "Practitioner", "id": "bs-le-van-cuong", "name": [{"text": "LÊ VĂN CƯỜNG"}]},
        _patient(PA, "79001", "BN000123", "NGUYỄN VĂN AN", "079090001234", "DN4797912345678", "org-cho-ray"),
        _patient(PB, "01001", "BM-556677", "Nguyễn Văn An", "079090001234", None, "org-bach-mai"),
        _patient(PC, "79001", "BN000999", "TRẦN THỊ BÌNH", "001185005678", None, "org-cho-ray"),
        {
            "resourceType": "Encounter",
            "id": "enc-cr-1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"code": "01", "display": "Khám bệnh"}]}],
            "subject": {"reference": f"Patient/{PA}"},
            "serviceProvider": {"reference": "Organization/org-cho-ray"},
            "period": {"start": "2024-03-01T08:00:00+07:00", "end": "2024-03-01T10:30:00+07:00"},
            "reasonCode": [{"text": "Khát nhiều, tiểu nhiều"}],
        },
        {
            "resourceType": "Encounter",
            "id": "enc-bm-1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{PB}"},
            "serviceProvider": {"reference": "Organization/org-bach-mai"},
            "period": {"start": "2024-09-10T09:00:00+07:00", "end": "2024-09-14T11:00:00+07:00"},
        },
        {
            "resourceType": "Observation",
            "id": "obs-glucose",
            "status": "final",
            "category": [LAB],
            "code": {
                "coding": [{"system": "http://loinc.org", "code": "2345-7"}],
                "text": "Glucose máu lúc đói",
            },
            "subject": {"reference": f"Patient/{PA}"},
            "encounter": {"reference": "Encounter/enc-cr-1"},
            "performer": [{"reference": "Practitioner/bs-le-van-cuong"}],
            "effectiveDateTime": "2024-03-01T08:30:00+07:00",
            "valueQuantity": {
                "value": 9.4,
                "unit": "mmol/L",
                "system": "http://unitsofmeasure.org",
                "code": "mmol/L",
            },
            "referenceRange": [
                {"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.4, "unit": "mmol/L"}}
            ],
        },
        {
            "resourceType": "Observation",
            "id": "obs-hba1c",
            "status": "final",
            "category": [LAB],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}], "text": "HbA1c"},
            "subject": {"reference": f"Patient/{PB}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "effectiveDateTime": "2024-09-10T10:00:00+07:00",
            "valueQuantity": {"value": 8.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
        },
        {
            "resourceType": "Condition",
            "id": "cond-e11",
            "subject": {"reference": f"Patient/{PA}"},
            "encounter": {"reference": "Encounter/enc-cr-1"},
            "recordedDate": "2024-03-01",
            "code": {
                "coding": [{"system": ICD10, "code": "E11.9"}],
                "text": "Đái tháo đường type 2 không biến chứng",
            },
        },
        {
            "resourceType": "Condition",
            "id": "cond-i10",
            "subject": {"reference": f"Patient/{PB}"},
            "encounter": {"reference": "Encounter/enc-bm-1"},
            "code": {"coding": [{"system": ICD10, "code": "I10", "display": "Tăng huyết áp vô căn"}]},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "rx-metformin",
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Metformin 500mg"},
            "subject": {"reference": f"Patient/{PA}"},
            "encounter": {"reference": "Encounter/enc-cr-1"},
            "authoredOn": "2024-03-01T10:00:00+07:00",
            "dosageInstruction": [{"text": "1 viên/lần × 2 lần/ngày"}],
        },
        {
            "resourceType": "ServiceRequest",
            "id": "ref-cr-bm",
            "status": "completed",
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            "code": {"text": "Chuyển tuyến"},
            "subject": {"reference": f"Patient/{PA}"},
            "encounter": {"reference": "Encounter/enc-cr-1"},
            "authoredOn": "2024-09-01T14:00:00+07:00",
            "performer": [{"reference": "Organization/org-bach-mai"}],
            "reasonCode": [{"coding": [{"system": ICD10, "code": "E11.9"}]}],
        },
        {
            "resourceType": "Appointment",
            "id": "appt-bm",
            "status": "booked",
            "description": "Hẹn tái khám",
            "identifier": [{"system": "urn:vn:cskcb:01001:giay-hen-kham-lai", "value": "HK000321"}],
            "start": "2024-10-01T08:00:00+07:00",
            "end": "2024-10-01T08:30:00+07:00",
            "participant": [{"actor": {"reference": f"Patient/{PB}"}, "status": "accepted"}],
        },
        {
            "resourceType": "Observation",
            "id": "obs-other",
            "status": "final",
            "category": [LAB],
            "code": {"text": "Glucose"},
            "subject": {"reference": f"Patient/{PC}"},
            "effectiveDateTime": "2024-03-01T08:30:00+07:00",
            "valueQuantity": {"value": 5.0, "unit": "mmol/L"},
        },
    ]
    return out


def transaction() -> dict:
    """The scenario as one transaction Bundle (PUTs, so it can be re-run)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources()
        ],
    }


# What $everything on either record must return once the two records are linked.
PERSON = {
    f"Patient/{PA}",
    f"Patient/{PB}",
    "Encounter/enc-cr-1",
    "Encounter/enc-bm-1",
    "Observation/obs-glucose",
    "Observation/obs-hba1c",
    "Condition/cond-e11",
    "Condition/cond-i10",
    "MedicationRequest/rx-metformin",
    "ServiceRequest/ref-cr-bm",
    "Appointment/appt-bm",
}
SUPPORT = {"Organization/org-cho-ray", "Organization/org-bach-mai", "Practitioner/bs-le-van-cuong"}


def load_and_link(store) -> list[str]:
    """Store the scenario and link the two records through the identity service; returns the link set."""
    from fhir_server.identity.service import link_all, linked_patient_ids

    bundles.transaction(store, transaction())
    link_all(store)
    return linked_patient_ids(store, PA)
