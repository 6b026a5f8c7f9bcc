"""Turn a FHIR Patient dict into the few normalised values the matcher compares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from fhir_server.identity.cards import cccd_problems, clean_number, parse_bhyt, parse_cccd
from fhir_server.text import fold
from mappings import MAPPINGS_DIR, load_yaml

_NON_DIGIT = re.compile(r"\D")
_ADDRESS_KINDS = ("province", "district", "ward")
_SEX = {"male": "male", "female": "female"}


@dataclass(slots=True)
class PatientFeatures:
    """Comparable, normalised view of one Patient; every field may be missing (None / empty)."""

    id: str
    family: str = ""  # folded family name (họ)
    given: str = ""  # folded middle + given names ("van an")
    last: str = ""  # folded last given token ("an"), the name people are called by
    year: int | None = None
    month: int | None = None  # None when the birth date is year-only (or a 01-01 placeholder)
    day: int | None = None
    sex: str | None = None
    province: str | None = None
    district: str | None = None
    ward: str | None = None
    phone: str | None = None  # national significant number, no leading 0 / +84
    cccd: str | None = None
    bhxh: str | None = None
    cccd_suspect: bool = False  # structure fine but contradicts birth year / sex: no deterministic use
    other_ids: tuple[str, ...] = field(default_factory=tuple)  # "cmnd:…", "passport:…"

    def person_keys(self) -> list[str]:
        """Identifier keys strong enough for a deterministic link."""
        keys = list(self.other_ids)
        if self.cccd and not self.cccd_suspect:
            keys.append("cccd:" + self.cccd)
        if self.bhxh:
            keys.append("bhxh:" + self.bhxh)
        return keys


@lru_cache(maxsize=1)
def _systems() -> tuple[dict[str, str], dict[str, str]]:
    """Identifier system -> kind and address extension url -> kind, over every known profile set.

    Records ingested under either VN Core guide must link, so all sets are recognised at once.
    """
    id_kinds: dict[str, str] = {}
    ext_kinds: dict[str, str] = {}
    for path in sorted((MAPPINGS_DIR / "profiles").glob("*.yaml")):
        ps = load_yaml(f"profiles/{path.name}")
        for kind in ("cccd", "cmnd", "passport", "bhyt"):
            url = (ps.get("identifier_systems") or {}).get(kind)
            if url:
                id_kinds[url] = kind
        for kind in _ADDRESS_KINDS:
            url = (ps.get("extensions") or {}).get(kind)
            if url:
                ext_kinds[url] = kind
    return id_kinds, ext_kinds


def normalize_phone(value: str | None) -> str | None:
    """Vietnamese phone to its national significant number: "+84 912-345-678" -> "912345678"."""
    if not value:
        return None
    digits = _NON_DIGIT.sub("", str(value))
    if digits.startswith("0084"):
        digits = digits[4:]
    elif digits.startswith("84") and len(digits) >= 11:
        digits = digits[2:]
    digits = digits.lstrip("0")
    # Placeholders ("0000000000", "999999999") would glue unrelated people together.
    if not 8 <= len(digits) <= 10 or len(set(digits)) <= 2:
        return None
    return digits


def parse_birth(value: str | None) -> tuple[int | None, int | None, int | None]:
    """FHIR date -> (year, month, day); month/day None when partial or the BHYT "01-01" filler."""
    if not value or len(value) < 4 or not value[:4].isdigit():
        return None, None, None
    year = int(value[:4])
    if len(value) >= 10 and value[5:7].isdigit() and value[8:10].isdigit():
        month, day = int(value[5:7]), int(value[8:10])
        if month == 1 and day == 1:
            # BHYT data fills unknown day+month with 0101; treat as year-only, not as a real date.
            return year, None, None
        return year, month, day
    return year, None, None


def _split_name(patient: dict) -> tuple[str, str, str]:
    names = patient.get("name") or []
    if not names:
        return "", "", ""
    name = next((n for n in names if n.get("use") == "official"), names[0])
    family = fold(name.get("family") or "")
    given = fold(" ".join(name.get("given") or []))
    if not family and not given and name.get("text"):
        tokens = fold(name["text"]).split(" ")
        family, given = tokens[0], " ".join(tokens[1:])
    elif " " in family and not given:
        # Whole name sent in `family`: Vietnamese order puts the family name first.
        family, _, given = family.partition(" ")
    last = given.rsplit(" ", 1)[-1] if given else ""
    return family, given, last


def _coding_value(ext: dict) -> str | None:
    if "valueCoding" in ext:
        return ext["valueCoding"].get("code")
    if "valueCodeableConcept" in ext:
        codings = ext["valueCodeableConcept"].get("coding") or []
        return codings[0].get("code") if codings else None
    return ext.get("valueCode") or ext.get("valueString")


def _admin_code(value: object) -> str:
    # QĐ130 sends province codes as 2 or 3 digits ("01" / "001"); compare without the padding.
    return str(value).strip().lstrip("0") or "0"


def _address_codes(patient: dict) -> dict[str, str]:
    _, ext_kinds = _systems()
    addresses = patient.get("address") or []
    if not addresses:
        return {}
    address = next((a for a in addresses if a.get("use") == "home"), addresses[0])
    codes: dict[str, str] = {}
    for ext in address.get("extension") or []:
        url = ext.get("url", "")
        kind = ext_kinds.get(url)
        if kind:
            value = _coding_value(ext)
            if value:
                codes[kind] = _admin_code(value)
        for sub in ext.get("extension") or []:
            # Ministry-era guide nests state/district/ward inside one complex extension.
            kind = ext_kinds.get(url + "#" + sub.get("url", ""))
            value = _coding_value(sub) if kind else None
            if kind and value:
                codes[kind] = _admin_code(value)
    return codes


def extract(patient: dict) -> PatientFeatures:
    """Build the matcher's view of a FHIR Patient resource (dict as stored)."""
    id_kinds, _ = _systems()
    family, given, last = _split_name(patient)
    year, month, day = parse_birth(patient.get("birthDate"))
    sex = _SEX.get(patient.get("gender") or "")
    codes = _address_codes(patient)
    phone = None
    for telecom in patient.get("telecom") or []:
        if telecom.get("system") in (None, "phone", "sms"):
            phone = normalize_phone(telecom.get("value"))
            if phone:
                break
    cccd = bhxh = None
    others: list[str] = []
    for ident in patient.get("identifier") or []:
        kind = id_kinds.get(ident.get("system", ""))
        value = ident.get("value")
        if not kind or not value:
            continue
        if kind in ("cccd", "cmnd"):
            info = parse_cccd(value)
            if info and not cccd:
                cccd = info.number  # a 12-digit CMND was re-issued as the same CCCD number
            elif kind == "cmnd" and len(clean_number(value)) == 9:
                others.append("cmnd:" + clean_number(value))
        elif kind == "passport":
            others.append("passport:" + clean_number(value))
        elif kind == "bhyt":
            card = parse_bhyt(value)
            if card is None:
                continue
            if card.key_kind == "cccd":
                cccd = cccd or card.stable
            else:
                bhxh = bhxh or card.stable
    suspect = bool(cccd and cccd_problems(cccd, year, sex))
    return PatientFeatures(
        id=patient.get("id", ""),
        family=family,
        given=given,
        last=last,
        year=year,
        month=month,
        day=day,
        sex=sex,
        province=codes.get("province"),
        district=codes.get("district"),
        ward=codes.get("ward"),
        phone=phone,
        cccd=cccd,
        bhxh=bhxh,
        cccd_suspect=suspect,
        other_ids=tuple(others),
    )
