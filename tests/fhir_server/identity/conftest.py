"""Builders for identity tests: Patients shaped like the QĐ130 adapter's output."""

from __future__ import annotations

from adapters.ids import deterministic_id
from adapters.names import human_name
from fhir_server.interactions import bundles
from mappings import profile_set

PS = profile_set("hl7vn")
SYS = PS["identifier_systems"]
EXT = PS["extensions"]


def patient(
    facility: str,
    ma_bn: str,
    name: str,
    birth: str | None = None,
    gender: str | None = None,
    cccd: str | None = None,
    bhyt: str | None = None,
    phone: str | None = None,
    province: str | None = None,
    district: str | None = None,
    ward: str | None = None,
) -> dict:
    """A hospital's Patient resource (id from facility + MA_BN, as the QĐ130 adapter makes it)."""
    idents = [{"system": f"{SYS['mrn']}/{facility}", "value": ma_bn}]
    if cccd:
        idents.append({"system": SYS["cccd"], "value": cccd})
    if bhyt:
        idents.append({"system": SYS["bhyt"], "value": bhyt})
    pat: dict = {
        "resourceType": "Patient",
        "id": deterministic_id("Patient", facility, ma_bn),
        "identifier": idents,
        "name": [human_name(name)],
    }
    if gender:
        pat["gender"] = gender
    if birth:
        pat["birthDate"] = birth
    if phone:
        pat["telecom"] = [{"system": "phone", "value": phone}]
    codes = [(k, v) for k, v in (("province", province), ("district", district), ("ward", ward)) if v]
    if codes:
        pat["address"] = [
            {"use": "home", "extension": [{"url": EXT[k], "valueCoding": {"code": v}} for k, v in codes]}
        ]
    return pat


def put_all(store, patients: list[dict]) -> None:
    """Store Patients with one transaction Bundle (PUT, so ids are kept)."""
    bundles.transaction(
        store,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": p, "request": {"method": "PUT", "url": f"Patient/{p['id']}"}} for p in patients
            ],
        },
    )
