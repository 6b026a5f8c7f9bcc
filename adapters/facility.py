"""The Organization of a health facility (mã CSKCB), one id and one shape for every adapter.

A hospital that sends both QĐ130 files and HL7 v2 messages is one Organization: both adapters key it on
the facility code alone (`deterministic_id("Organization", code)`, the QĐ130 adapter's id since its
first release) and write the same identifier, so either source updates the same resource.
"""

from __future__ import annotations

from functools import lru_cache

from adapters.ids import deterministic_id
from mappings import facilities

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


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
    return res
