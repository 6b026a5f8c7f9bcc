"""Visits as a hospital would send them after mapping (Patient, Organization, Encounter, principal Condition)."""

from __future__ import annotations

import datetime as dt

from adapters.address import enrich
from mappings import profile_set

HL7VN = profile_set("hl7vn")["extensions"]
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# (old province, district, commune) of a home address, sent with the codes of before the reform
BINH_DUONG = ("74", "718", "25771")  # now TP Hồ Chí Minh (79)
HO_CHI_MINH = ("79", "760", "26740")
HA_NOI = ("01", "002", "00037")


def visit_bundle(
    n: int,
    *,
    name: str = "Nguyễn Văn An",
    gender: str = "male",
    birth: str = "1980-03-04",
    home: tuple[str, str, str] = HO_CHI_MINH,
    icd: str = "J18.9",
    cls: str = "AMB",
    start: str = "2024-05-07",
    end: str | None = None,
    facility: str = "79001",
    referred_from: str | None = None,
) -> dict:
    """A transaction Bundle with one visit numbered `n` (ids are stable: re-sending it updates it)."""
    family, *given = name.split()
    addr = enrich({"text": "Số 1"}, HL7VN, *home, on=dt.date.fromisoformat(start))
    pid, eid, cid = f"bn-{n}", f"lk-{n}", f"dx-{n}"
    enc: dict = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished" if end else "in-progress",
        "class": {"system": ACT, "code": cls},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, **({"end": end} if end else {})},
        "diagnosis": [{"condition": {"reference": f"Condition/{cid}"}, "rank": 1}],
        "serviceProvider": {"reference": f"Organization/cs-{facility}"},
    }
    if referred_from:
        enc["hospitalization"] = {"origin": {"reference": f"Organization/cs-{referred_from}"}}
    resources = [
        {
            "resourceType": "Organization",
            "id": f"cs-{facility}",
            "identifier": [{"system": "http://fhir.hl7.org.vn/core/sid/ma-cskcb", "value": facility}],
            "name": f"Cơ sở {facility}",
        },
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": family, "given": given, "text": name}],
            "gender": gender,
            "birthDate": birth,
            "identifier": [{"system": "http://fhir.hl7.org.vn/core/sid/bhyt", "value": f"DN47979{n:08d}"}],
            "address": [{"use": "home", **addr}],
        },
        {
            "resourceType": "Condition",
            "id": cid,
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "code": {"coding": [{"system": ICD10, "code": icd}]},
        },
        enc,
    ]
    if referred_from:
        resources.insert(
            0,
            {
                "resourceType": "Organization",
                "id": f"cs-{referred_from}",
                "identifier": [
                    {"system": "http://fhir.hl7.org.vn/core/sid/ma-cskcb", "value": referred_from}
                ],
            },
        )
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }
