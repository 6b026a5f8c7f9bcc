"""The Organization of a health facility (mã CSKCB), one id and one shape for every adapter.

A hospital that sends both QĐ130 files and HL7 v2 messages is one Organization: both adapters key it on
the facility code alone (`deterministic_id("Organization", code)`, the QĐ130 adapter's id since its
first release) and write the same identifier, so either source updates the same resource.
"""

from __future__ import annotations

from functools import lru_cache

from adapters.address import LT_EXT, NEW_EXT, OLD_EXT, SYSTEM_NEW, SYSTEM_OLD
from adapters.ids import deterministic_id
from mappings import admin_units, facilities

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Technical level under Luật KCB 15/2023 (ban-dau | co-ban | chuyen-sau): no guide extension carries it.
LEVEL_EXT = f"{LT_EXT}facility-level"
LEVEL_SYSTEM = "http://lienthong.vn/fhir/CodeSystem/facility-level"
LEVEL_NAMES = {"ban-dau": "Ban đầu", "co-ban": "Cơ bản", "chuyen-sau": "Chuyên sâu"}


@lru_cache(maxsize=65536)
def organization_id(code: str) -> str:
    """Id of the Organization of a facility code (cached: shared by every resource of every bundle)."""
    return deterministic_id("Organization", code)


def facility_name(code: str, given: str | None = None) -> str | None:
    """The name to write: the one the source or its configuration gives, else the facility registry's."""
    if given:
        return given
    known = facilities.lookup(code)
    return known.name if known else None


def organization(code: str, system: str, name: str | None = None) -> dict:
    """Organization body (with id) for a facility code in the guide's facility identifier system."""
    res: dict = {
        "resourceType": "Organization",
        "id": organization_id(code),
        "active": True,
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "PRN"}]},
                "system": system,
                "value": code,
            }
        ],
    }
    name = facility_name(code, name)
    if name:
        res["name"] = name
    known = facilities.lookup(code)
    if known is not None:
        _registry_details(res, known)
    return res


def _registry_details(res: dict, known: facilities.Facility) -> None:
    """Level and province (both eras) of a registry facility, as an extension and an Address."""
    if known.level:
        coding = {"system": LEVEL_SYSTEM, "code": known.level, "display": LEVEL_NAMES.get(known.level, "")}
        res["extension"] = [{"url": LEVEL_EXT, "valueCoding": {k: v for k, v in coding.items() if v}}]
    old = admin_units.province(known.province_old, "old") if known.province_old else None
    new = admin_units.province(known.province_new, "new") if known.province_new else None
    if old is None and new is None:
        return
    exts = []
    if new is not None:
        exts.append({"url": NEW_EXT["province"], "valueCoding": _unit(SYSTEM_NEW, new)})
    if old is not None:
        exts.append({"url": OLD_EXT["province"], "valueCoding": _unit(SYSTEM_OLD, old)})
    state = (new or old).name  # type: ignore[union-attr]
    res["address"] = [{"use": "work", "text": state, "state": state, "country": "VN", "extension": exts}]


def _unit(system: str, unit: admin_units.Province) -> dict:
    """Coding of a province."""
    return {"system": system, "code": unit.code, "display": unit.name}
