"""Vietnamese test resources shared by the search tests (synthetic people, realistic shapes)."""

from __future__ import annotations

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
CSKCB = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
ETHNICITY_URL = "http://fhir.hl7.org.vn/core/StructureDefinition/vn-ext-ethnicity"
ETHNICITY_SYSTEM = "http://fhir.hl7.org.vn/core/CodeSystem/vn-ethnicity"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _patient(
    pid: str,
    family: str,
    given: list[str],
    gender: str,
    birth: str,
    cccd: str | None,
    city: str,
    ethnicity: tuple[str, str] | None = None,
    org: str | None = None,
    **extra,
) -> dict:
    res: dict = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "family": family, "given": given, "text": " ".join([family, *given])}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"line": ["12 Phố Huế"], "city": city, "country": "VN"}],
    }
    if cccd:
        res["identifier"] = [
            {
                "system": CCCD,
                "value": cccd,
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}]
                },
            }
        ]
    if ethnicity:
        res["extension"] = [
            {
                "url": ETHNICITY_URL,
                "valueCodeableConcept": {
                    "coding": [{"system": ETHNICITY_SYSTEM, "code": ethnicity[0], "display": ethnicity[1]}]
                },
            }
        ]
    if org:
        res["managingOrganization"] = {"reference": f"Organization/{org}"}
    res.update(extra)
    return res


def _weight(oid: str, patient: str, kg: float, when: str, performer: str | None = None) -> dict:
    res = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
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
        "code": {
            "coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
            "text": "Cân nặng",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": kg, "unit": "kg", "system": UCUM, "code": "kg"},
    }
    if performer:
        res["performer"] = [{"reference": f"Practitioner/{performer}"}]
    return res


def resources() -> list[dict]:
    """The dataset: 4 patients, 1 organization, 1 practitioner, 4 observations, 1 encounter, 1 condition."""
    return [
        {
            "resourceType": "Organization",
            "id": "org1",
            "name": "Bệnh viện Bạch Mai",
            "identifier": [{"system": CSKCB, "value": "01929"}],
        },
        {
            "resourceType": "Practitioner",
            "id": "pr1",
            "name": [{"family": "Phạm", "given": ["Minh", "Đức"], "text": "Phạm Minh Đức"}],
        },
        _patient(
            "p1",
            "Nguyễn",
            ["Văn", "An"],
            "male",
            "1985-03-12",
            "001085012345",
            "Hà Nội",
            ("01", "Kinh"),
            org="org1",
        ),
        _patient(
            "p2",
            "NGUYỄN",
            ["THỊ", "BÌNH"],
            "female",
            "1990-07-01",
            "079190000111",
            "Hồ Chí Minh",
            ("02", "Tày"),
        ),
        _patient(
            "p3", "Trần", ["Đức", "Cường"], "male", "1978", "031078000222", "Đà Nẵng", deceasedBoolean=False
        ),
        _patient("p4", "Lê", ["Thị", "Dung"], "female", "2001-11-20", None, "Cần Thơ"),
        _weight("o1", "p1", 65, "2024-01-15T08:30:00+07:00", performer="pr1"),
        _weight("o2", "p1", 67.5, "2024-06-20T09:00:00+07:00"),
        {
            "resourceType": "Observation",
            "id": "o3",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
            "subject": {"reference": "Patient/p2"},
            "effectiveDateTime": "2024-03-05",
            "component": [
                {
                    "code": {
                        "coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]
                    },
                    "valueQuantity": {"value": 135, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                },
                {
                    "code": {
                        "coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]
                    },
                    "valueQuantity": {"value": 85, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                },
            ],
        },
        {
            "resourceType": "Observation",
            "id": "o4",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "4548-4", "display": "Hemoglobin A1c"}]},
            "subject": {"reference": "Patient/p3"},
            "effectiveDateTime": "2023-12-31T23:30:00+07:00",
            "valueQuantity": {"value": 7.2, "unit": "%", "system": UCUM, "code": "%"},
        },
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2024-01-15", "end": "2024-01-17"},
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/sid/icd-10",
                        "code": "E11",
                        "display": "Đái tháo đường type 2",
                    }
                ]
            },
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "recordedDate": "2024-01-15",
        },
    ]


def ethnicity_param() -> dict:
    """A custom SearchParameter on the VN ethnicity extension."""
    return {
        "resourceType": "SearchParameter",
        "id": "vn-ethnicity",
        "url": "http://example.org/sp/vn-ethnicity",
        "name": "ethnicity",
        "status": "active",
        "code": "ethnicity",
        "base": ["Patient"],
        "type": "token",
        "description": "Dân tộc (VN Core ethnicity extension)",
        "expression": f"Patient.extension.where(url='{ETHNICITY_URL}').value",
    }


def transaction(items: list[dict]) -> dict:
    """A transaction Bundle PUTting every resource at its id."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in items
        ],
    }
