"""Three hospitals, each its own Lienthong node: one person (NGUYỄN VĂN AN, CCCD 079090001234) was seen at
all three, with a record number of each hospital; Chợ Rẫy also holds an unrelated patient. The
Practitioner who referred the patient appears, identical, on two nodes."""

from __future__ import annotations

from fhir_server.ids import deterministic_id

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
MRN = "http://fhir.hl7.org.vn/core/sid/mrn"
CSKCB = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
AN_CCCD = "079090001234"

HOSPITALS = {
    "bv-cho-ray": ("79001", "Bệnh viện Chợ Rẫy", "BN000123", "2024-03-01", "E11.9", "Đái tháo đường type 2"),
    "bv-bach-mai": ("01001", "Bệnh viện Bạch Mai", "BM-556677", "2024-09-10", "I10", "Tăng huyết áp vô căn"),
    "bv-hue": (
        "46001",
        "Bệnh viện Trung ương Huế",
        "H-77001",
        "2025-02-20",
        "N18.3",
        "Bệnh thận mạn giai đoạn 3",
    ),
}
PRACTITIONER = {"resourceType": "Practitioner", "id": "bs-le-van-cuong", "name": [{"text": "LÊ VĂN CƯỜNG"}]}


def patient_id(node: str) -> str:
    """The id of the person's record at one hospital."""
    facility, _, mrn, *_ = HOSPITALS[node]
    return deterministic_id("Patient", facility, mrn)


def _patient(
    pid: str, facility: str, org: str, mrn: str, name: str, cccd: str, birth: str, gender: str
) -> dict:
    family, *given = name.split()
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": f"{MRN}/{facility}", "value": mrn}, {"system": CCCD, "value": cccd}],
        "name": [{"use": "official", "text": name, "family": family, "given": given}],
        "gender": gender,
        "birthDate": birth,
        "managingOrganization": {"reference": f"Organization/{org}"},
    }


def resources(node: str) -> list[dict]:
    """Everything one hospital's node holds."""
    facility, org_name, mrn, day, icd, icd_text = HOSPITALS[node]
    org = f"org-{facility}"
    pid = patient_id(node)
    name = "NGUYỄN VĂN AN" if node != "bv-bach-mai" else "Nguyễn Văn An"
    enc = deterministic_id("Encounter", facility, mrn, day)
    out = [
        {
            "resourceType": "Organization",
            "id": org,
            "name": org_name,
            "identifier": [{"system": CSKCB, "value": facility}],
        },
        _patient(pid, facility, org, mrn, name, AN_CCCD, "1990-05-15", "male"),
        {
            "resourceType": "Encounter",
            "id": enc,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "serviceProvider": {"reference": f"Organization/{org}"},
            **(
                {"participant": [{"individual": {"reference": "Practitioner/bs-le-van-cuong"}}]}
                if node != "bv-hue"
                else {}
            ),
            "period": {"start": f"{day}T08:00:00+07:00", "end": f"{day}T10:30:00+07:00"},
        },
        {
            "resourceType": "Condition",
            "id": deterministic_id("Condition", facility, mrn, icd),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{enc}"},
            "code": {"coding": [{"system": ICD10, "code": icd}], "text": icd_text},
        },
    ]
    if node in ("bv-cho-ray", "bv-bach-mai"):
        out.append(PRACTITIONER)
    if node == "bv-cho-ray":
        other = deterministic_id("Patient", facility, "BN000999")
        out.append(
            _patient(
                other, facility, org, "BN000999", "TRẦN THỊ BÌNH", "001185005678", "1985-11-02", "female"
            )
        )
    return out


def transaction(node: str) -> dict:
    """One hospital's data as a transaction Bundle of PUTs."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources(node)
        ],
    }
