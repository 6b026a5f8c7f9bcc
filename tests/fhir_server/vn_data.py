"""Small Vietnamese test resources shared by the server tests."""

from __future__ import annotations

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def patient(name: str = "NGUYỄN VĂN AN", cccd: str = "079090001234", res_id: str | None = None) -> dict:
    """A Patient with a CCCD identifier and a family-name-first Vietnamese name."""
    family, *given = name.split()
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": cccd}],
        "name": [{"use": "official", "text": name, "family": family, "given": given}],
        "gender": "male",
        "birthDate": "1990-05-15",
        "address": [{"text": "Số 12 đường Lê Lợi, Phường Bến Nghé, Thành phố Hồ Chí Minh", "state": "79"}],
    }
    if res_id:
        body["id"] = res_id
    return body


def observation(subject: str, value: float = 5.4, res_id: str | None = None) -> dict:
    """A glucose Observation for a subject reference."""
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}],
            "text": "Đường huyết",
        },
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-03-15T08:00:00+07:00",
        "valueQuantity": {
            "value": value,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
    }
    if res_id:
        body["id"] = res_id
    return body
