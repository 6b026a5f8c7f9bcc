"""Mapping context for one HOSO: systems, code maps, id helpers and the bundle being built."""

from __future__ import annotations

import base64
from functools import lru_cache
from html import escape

from adapters.facility import organization, organization_id
from adapters.ids import deterministic_id
from mappings import load_yaml, profile_set
from mappings.profile_rules import profile_for

from .values import to_date, to_datetime
from .vendors import VendorProfile

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

# Ids of resources shared across episodes (Organization, Practitioner, Location, Patient) repeat a lot.
shared_id = lru_cache(maxsize=65536)(deterministic_id)


@lru_cache(maxsize=8)
def _profile(name: str) -> dict:
    """Profile set by name, cached (the loader checks the file system on each call)."""
    return profile_set(name)


class Ctx:
    """Everything the table mappers share while building one transaction Bundle."""

    def __init__(
        self,
        facility: str,
        ma_lk: str,
        vendor: VendorProfile,
        profile: str = "hl7vn",
        icd10_path: str | None = None,
    ) -> None:
        """Bind the facility, episode key, vendor quirks, VN Core profile set and ICD-10 list path."""
        self.icd10_path = icd10_path
        self.ps = _profile(profile)
        self.fx = load_yaml("qd130/fhir.yaml")
        self.codes = load_yaml("qd130/codes.yaml")
        self.vendor = vendor
        self.facility = facility
        self.ma_lk = ma_lk
        self.entries: list[dict] = []
        self._seen: set[tuple[str, str]] = set()
        self.warnings: list = []
        self.patient_ref = ""
        self.encounter_ref = ""
        self.condition_refs: list[dict] = []
        self.kcb = ""
        self.xml1: dict = {}
        self._dt: dict[str, str | None] = {}

    # --- ids and bundle -------------------------------------------------------------------
    def rid(self, rtype: str, table: str, *row: str | int | None) -> str:
        """Deterministic id of a resource born from one row of one table of this episode."""
        return deterministic_id(rtype, self.facility, self.ma_lk, table, *row)

    def add(self, res: dict) -> dict:
        """Put a resource in the bundle as a PUT entry (once per type/id); return its reference."""
        key = (res["resourceType"], res["id"])
        if key not in self._seen:
            self._seen.add(key)
            prof = profile_for(self.ps, res)
            if prof:
                res["meta"] = {"profile": [prof]}
            self.entries.append({"resource": res, "request": {"method": "PUT", "url": f"{key[0]}/{key[1]}"}})
        return {"reference": f"{key[0]}/{key[1]}"}

    def bundle(self) -> dict:
        """The transaction Bundle built so far."""
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}

    # --- systems ----------------------------------------------------------------------------
    def idsys(self, key: str, facility: str | None = None) -> str:
        """Identifier system by key: profile set first, then mappings/qd130/fhir.yaml ({facility} filled)."""
        sysmap = self.ps.get("identifier_systems", {})
        url = sysmap.get(key) or self.fx["identifier_systems"][key]
        return url.replace("{facility}", facility or self.facility)

    def ext(self, key: str) -> str:
        """Extension URL by key: profile set first, then the adapter's own."""
        return self.ps.get("extensions", {}).get(key) or self.fx["extensions"][key]

    def cs(self, key: str) -> str:
        """Local code system URL for a QĐ130 code set (base from the profile set)."""
        base = self.ps["code_systems"]["qd130"]
        suffix = self.fx["code_systems"].get(key) or self.codes["maps"][key]["source"]
        return f"{base}/{suffix}"

    def dx_coding(self, code: str) -> dict:
        """Coding of a diagnosis code: ICD-10 when it passes the check, else the unverified local system."""
        from . import icd

        return icd.coding(code, self.ps["code_systems"]["icd10"], self.cs("unverified_dx"), self.icd10_path)

    def code_map(self, name: str) -> dict:
        """One code map of mappings/qd130/codes.yaml."""
        return self.codes["maps"][name]

    def coded(self, name: str, code: str) -> dict:
        """CodeableConcept with the QĐ130 local coding (display from the code map when known)."""
        entry = self.code_map(name)["codes"].get(code, {})
        coding = {"system": self.cs(name), "code": code}
        if "display" in entry:
            coding["display"] = entry["display"]
        return {"coding": [coding]}

    # --- shared resources -------------------------------------------------------------------
    def org(self, code: str | None = None) -> dict:
        """Reference to the Organization with a 5-digit facility code (emitted once per bundle).

        Id and shape come from adapters.facility, so the HL7 v2 adapter writes the same resource."""
        code = code or self.facility
        rid = organization_id(code)
        if ("Organization", rid) not in self._seen:
            name = (self.vendor.facility.get("names") or {}).get(code)
            return self.add(organization(code, self.idsys("facility"), name))
        return {"reference": f"Organization/{rid}"}

    def payor(self) -> dict:
        """Reference to the BHXH (Vietnam Social Security) payor Organization."""
        p = self.fx["payor"]
        rid = shared_id("Organization", p["code"])
        return self.add(
            {
                "resourceType": "Organization",
                "id": rid,
                "active": True,
                "name": p["name"],
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                "code": "ins",
                            }
                        ]
                    }
                ],
            }
        )

    def practitioner(
        self, code: str | None, name: str | None = None, kind: str = "practitioner"
    ) -> dict | None:
        """Reference to a Practitioner by health-worker code (CCHN) or health ID (kind='health_id')."""
        if not code:
            return None
        code = code.split(";")[0].strip()
        if not code:
            return None
        rid = shared_id("Practitioner", kind, code)
        res = {
            "resourceType": "Practitioner",
            "id": rid,
            "identifier": [{"system": self.idsys(kind), "value": code}],
        }
        if name:
            from adapters.names import human_name

            res["name"] = [human_name(name)]
        return self.add(res)

    def location(self, khoa: str) -> dict:
        """Reference to the department Location (MA_KHOA) of this facility."""
        rid = shared_id("Location", self.facility, khoa)
        return self.add(
            {
                "resourceType": "Location",
                "id": rid,
                "status": "active",
                "mode": "instance",
                "identifier": [{"system": self.idsys("department"), "value": khoa}],
                "name": khoa,
                "physicalType": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                            "code": "wa",
                        }
                    ]
                },
                "managingOrganization": self.org(),
            }
        )

    # --- values -------------------------------------------------------------------------
    def dt(self, value: str | None) -> str | None:
        """yyyyMMddHHmm → FHIR dateTime, None when absent or invalid (validation already reported it)."""
        if not value:
            return None
        hit = self._dt.get(value, False)
        if hit is not False:
            return hit
        try:
            out = to_datetime(value, self.vendor)
        except ValueError:
            out = None
        self._dt[value] = out
        return out

    def date(self, value: str | None) -> str | None:
        """yyyyMMdd → FHIR date, None when absent or invalid."""
        if not value:
            return None
        try:
            return to_date(value, self.vendor)
        except ValueError:
            return None

    def when(self, value: str | None) -> str | None:
        """yyyyMMdd or yyyyMMddHHmm (tables that allow both) → FHIR date or dateTime; None when invalid."""
        if not value:
            return None
        return self.dt(value) if len(value) == 12 else self.date(value)

    def money(self, value) -> dict:
        """A Money in the configured currency (VND)."""
        return {"value": value, "currency": self.fx["currency"]}


def narrative(text: str) -> dict:
    """Generated XHTML narrative holding plain text (escaped; line breaks kept)."""
    body = "<br/>".join(escape(line) for line in text.splitlines()) or escape(text)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def b64(data: bytes | str) -> str:
    """Base64 text for Attachment.data."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")
