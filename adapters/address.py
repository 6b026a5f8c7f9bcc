"""Vietnamese addresses in both administrative eras (before/after the 1 Jul 2025 reform), for every adapter.

A source sends province/district/commune codes of one era (QĐ130: MATINH/MAHUYEN/MAXA_CU_TRU; HL7 v2: XAD),
usually the old one for years after the reform. The Address keeps what was sent (its text, its codes) and
gains the unit names (`city` = commune, `district`, `state` = province, `text` when none was sent) and the
codes of both eras as extensions:

- new-era codes (QĐ 19/2025) in the guide's own extensions when the profile set defines them as simple
  extensions (HL7 Vietnam 2026 guide: `vn-ext-province`, `vn-ext-ward`), else under the Lienthong namespace;
- old-era codes (QĐ 124/2004) in the guide's complex `extension-administrative-address` when the profile set
  has one (the 2020-21 ministry guide predates the reform), else under the Lienthong namespace.

A split old commune has no single new commune: only the new province is given then. Codes that are not on
any list are kept as sent, without a name.
"""

from __future__ import annotations

import datetime as dt

from mappings import admin_units

LT_EXT = "http://lienthong.vn/fhir/StructureDefinition/"
# Our code systems for the two official unit lists (no published FHIR CodeSystem exists for either).
SYSTEM_OLD = "http://lienthong.vn/fhir/CodeSystem/dvhc-qd124-2004"
SYSTEM_NEW = "http://lienthong.vn/fhir/CodeSystem/dvhc-qd19-2025"
OLD_EXT = {k: f"{LT_EXT}address-old-{k}" for k in ("province", "district", "ward")}
NEW_EXT = {k: f"{LT_EXT}address-new-{k}" for k in ("province", "ward")}


def _coding(system: str, code: str, name: str | None) -> dict:
    """A Coding with the unit's official name as display when known."""
    coding = {"system": system, "code": code}
    if name:
        coding["display"] = name
    return coding


def _pick(given: str | None, unit, width: int) -> tuple[str, str | None] | None:
    """(code, name) for one level: the code as sent (zero-padded) with the unit's name when they agree;
    when nothing was sent at this level, the unit the more specific code belongs to."""
    if given is None or not str(given).strip():
        return (unit.code, unit.name) if unit is not None else None
    code = admin_units.normalize_code(given, width) or str(given).strip()
    return code, unit.name if unit is not None and unit.code == code else None


def enrich(
    addr: dict,
    profile_extensions: dict[str, str],
    province: str | None = None,
    district: str | None = None,
    ward: str | None = None,
    on: dt.date | None = None,
    era: admin_units.Era | None = None,
) -> dict:
    """Add names, a text and both eras' codes to `addr` (in place; returned) from the codes a source sent.

    `era` forces how the codes are read; by default the QĐ130 rule of admin_units.resolve_qd130 decides."""
    given = [v for v in (province, district, ward) if v and str(v).strip()]
    if not given:
        return addr
    if era == "new":
        res = admin_units.resolve_address(new_province_code=province, new_ward_code=ward)
    elif era == "old":
        res = admin_units.resolve_address(province, district, ward)
    else:
        res = admin_units.resolve_qd130(province, district, ward, on)
    sent_new = res.old_province is None and res.old_ward is None and res.old_district is None
    sent_new = sent_new and (res.new_province is not None or res.new_ward is not None)
    old: dict[str, tuple[str, str | None]] = {}
    new: dict[str, tuple[str, str | None]] = {}
    if sent_new:
        for key, val, unit, width in (
            ("province", province, res.new_province, 2),
            ("ward", ward, res.new_ward, 5),
        ):
            if (picked := _pick(val, unit, width)) is not None:
                new[key] = picked
    else:
        for key, val, unit, width in (
            ("province", province, res.old_province, 2),
            ("district", district, res.old_district, 3),
            ("ward", ward, res.old_ward, 5),
        ):
            if (picked := _pick(val, unit, width)) is not None:
                old[key] = picked
        if res.new_province is not None:
            new["province"] = (res.new_province.code, res.new_province.name)
        if res.new_ward is not None:
            new["ward"] = (res.new_ward.code, res.new_ward.name)
    # names of the era that was sent; the other era's names ride on the extensions' displays
    names = new if sent_new else old
    for key, element in (("ward", "city"), ("district", "district"), ("province", "state")):
        if key in names and names[key][1] and not addr.get(element):
            addr[element] = names[key][1]
    if not addr.get("text"):
        parts = [*addr.get("line", []), *(addr.get(k) for k in ("city", "district", "state"))]
        text = ", ".join(p for p in parts if p)
        if text:
            addr["text"] = text
    addr["extension"] = [*addr.get("extension", []), *_extensions(profile_extensions, old, new)]
    if not addr["extension"]:
        del addr["extension"]
    return addr


def _extensions(
    urls: dict[str, str], old: dict[str, tuple[str, str | None]], new: dict[str, tuple[str, str | None]]
) -> list[dict]:
    """Extensions for both eras' codes, in the profile set's style where its guide defines one."""
    out: list[dict] = []
    guide_new = "administrative_address" not in urls
    for key in ("province", "ward"):
        if key in new:
            url = urls.get(key) if guide_new and urls.get(key) else NEW_EXT[key]
            out.append({"url": url, "valueCoding": _coding(SYSTEM_NEW, *new[key])})
    if "administrative_address" in urls:
        sub = [
            {
                "url": {"province": "state"}.get(key, key),
                "valueCodeableConcept": {"coding": [_coding(SYSTEM_OLD, *old[key])]},
            }
            for key in ("province", "district", "ward")
            if key in old
        ]
        if sub:
            out.append({"url": urls["administrative_address"], "extension": sub})
    else:
        for key in ("province", "district", "ward"):
            if key in old:
                out.append({"url": OLD_EXT[key], "valueCoding": _coding(SYSTEM_OLD, *old[key])})
    return out


def codes_from_names(
    state: str | None, district: str | None, city: str | None
) -> tuple[admin_units.Era, str | None, str | None, str | None]:
    """(era, province, district, commune codes) of the units an HL7 v2 XAD names (or codes), old era first.

    A component that is all digits is taken as a code; a name is looked up (accents and 'Tỉnh'/'Quận'/
    'Phường' prefixes ignored) and used only when it names exactly one unit."""

    def one(found: list) -> str | None:
        return found[0].code if len(found) == 1 else None

    p = d = w = None
    if state:
        p = state if state.strip().isdigit() else one(admin_units.find_provinces(state, "old"))
        if p is None and not state.strip().isdigit():
            newp = one(admin_units.find_provinces(state, "new"))
            if newp is not None:
                wc = (city if city and city.strip().isdigit() else None) or one(
                    admin_units.find_wards(city, "new", newp) if city else []
                )
                return "new", newp, None, wc
    if district:
        d = district if district.strip().isdigit() else one(admin_units.find_districts(district, p))
    if city:
        w = city if city.strip().isdigit() else one(admin_units.find_wards(city, "old", p, d))
    return "old", p, d, w
