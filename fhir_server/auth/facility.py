"""Which facility (mã CSKCB) a resource belongs to, for the rule "a hospital client writes only its own".

A resource names its facility through any of:
- `meta.source` = `urn:vn:cskcb:<code>` (optionally followed by `:` or `/` and more),
- an identifier whose system is facility-scoped, `urn:vn:cskcb:<code>:…` (the QĐ130 numbers),
  or the MRN system of the profile set followed by `/<code>`,
- for the facility's own Organization: an identifier in a facility-code system whose value is the code,
- the owner reference (`managingOrganization`, `serviceProvider`, `custodian`): `Organization/<id>` where
  id is the facility Organization id (`deterministic_id("Organization", code)`); a reference to any
  other Organization counts as another facility.
A hospital client may write a resource only when the set of facilities it names is exactly its own,
both for the new content and for the version already stored (so it cannot take over another
hospital's Patient or Encounter by id). Resources naming no facility are writable only by clients
without a facility claim (the hub, administrators).
"""

from __future__ import annotations

import re

from fhir_server.ids import deterministic_id

_URN = re.compile(r"^urn:vn:cskcb:([0-9A-Za-z]+)(?:[:/].*)?$")
FACILITY_SYSTEMS = (
    "http://fhir.hl7.org.vn/core/sid/ma-cskcb",
    "http://fhir.ehealth.gov.vn/core/sid/provider-code",
)
MRN_SYSTEM = "http://fhir.hl7.org.vn/core/sid/mrn/"
OWNER_FIELDS = ("managingOrganization", "serviceProvider", "custodian")
FOREIGN = "?"  # an owner reference to an Organization that is not the caller's facility


def facilities_of(resource: dict, caller: str) -> set[str]:
    """The facility codes a resource names (FOREIGN for an owner Organization that is not `caller`'s)."""
    out: set[str] = set()
    meta = resource.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("source"), str):
        m = _URN.match(meta["source"])
        if m:
            out.add(m.group(1))
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict):
            continue
        system = str(ident.get("system") or "")
        m = _URN.match(system)
        if m:
            out.add(m.group(1))
        elif system.startswith(MRN_SYSTEM):
            out.add(system[len(MRN_SYSTEM) :])
        elif system in FACILITY_SYSTEMS and resource.get("resourceType") == "Organization":
            out.add(str(ident.get("value") or FOREIGN))
    own_org = f"Organization/{deterministic_id('Organization', caller)}"
    for name in OWNER_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            out.add(caller if ref["reference"] == own_org else FOREIGN)
    return out


def belongs_to(resource: dict, facility: str) -> bool:
    """Whether the resource names exactly this facility (and no other)."""
    return facilities_of(resource, facility) == {facility}
