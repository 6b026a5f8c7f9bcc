"""HL7 v2 data types -> FHIR data types (TS, CX, XPN, CWE, XAD, XTN, XCN, NM/SN), driven by mappings/hl7v2."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from adapters.address import codes_from_names, enrich
from adapters.hl7v2.er7 import Encoding, Segment, split_components, subcomponents
from adapters.hl7v2.errors import DATA_TYPE_ERROR, content_error
from adapters.names import human_name
from fhir_server.text import nfc
from mappings import load_yaml, profile_set
from mappings.terminology import ucum

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?\d*([+-]\d{4})?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
UCUM = "http://unitsofmeasure.org"


@lru_cache(maxsize=None)
def tables() -> dict:
    """mappings/hl7v2/tables.yaml (cached)."""
    return load_yaml("hl7v2/tables.yaml")


@lru_cache(maxsize=None)
def profile(name: str) -> dict:
    """mappings/profiles/<name>.yaml (cached here: profile_set checks the file on every call)."""
    return profile_set(name)


@lru_cache(maxsize=None)
def identifier_rules() -> dict:
    """mappings/hl7v2/identifiers.yaml (cached)."""
    return load_yaml("hl7v2/identifiers.yaml")


@dataclass
class Context:
    """Everything a segment mapper needs besides the segment: facility, time zone, systems, location."""

    facility: str  # facility code used in ids and facility-scoped systems
    tz_offset: str = "+07:00"
    profile: str = "hl7vn"
    systems: dict = field(default_factory=dict)
    local_base: str = "urn:lienthong:hl7v2"
    encoding: Encoding = field(default_factory=Encoding)

    @classmethod
    def build(cls, facility: str, options: dict | None, encoding: Encoding) -> "Context":
        """Context from options (tz_offset, profile_set) and the mapping data files."""
        options = options or {}
        defaults = tables()["defaults"]
        profile_name = options.get("profile_set") or "hl7vn"
        return cls(
            facility=facility,
            tz_offset=options.get("tz_offset") or defaults["tz_offset"],
            profile=profile_name,
            systems=profile(profile_name)["identifier_systems"],
            local_base=defaults["local_system_base"],
            encoding=encoding,
        )

    @property
    def profile_extensions(self) -> dict[str, str]:
        """Extension URLs of the profile set (address codes follow the guide's style)."""
        return profile(self.profile).get("extensions", {})

    def local_system(self, *parts: str) -> str:
        """A facility-scoped local system URI, e.g. urn:lienthong:hl7v2/01929/filler."""
        return "/".join([self.local_base, self.facility, *parts])


def datetime_(value: str, ctx: Context, where: str) -> str | None:
    """HL7 TS/DTM -> FHIR dateTime; hours without an offset get the configured offset (+07:00)."""
    value = value.strip()
    if not value:
        return None
    m = _TS.match(value)
    if not m:
        raise content_error(DATA_TYPE_ERROR, where, f"not an HL7 date/time: {value!r}")
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        if (
            mo
            and not 1 <= int(mo) <= 12
            or d
            and not 1 <= int(d) <= 31
            or h
            and int(h) > 23
            or mi
            and int(mi) > 59
            or s
            and int(s) > 60
        ):
            raise ValueError
    except ValueError:
        raise content_error(DATA_TYPE_ERROR, where, f"date/time out of range: {value!r}") from None
    out = y
    if mo:
        out += f"-{mo}"
    if d:
        out += f"-{d}"
    if h:
        out += f"T{h}:{mi or '00'}:{s or '00'}{frac or ''}"
        out += f"{off[:3]}:{off[3:]}" if off else ctx.tz_offset
    return out


def date_(value: str, ctx: Context, where: str) -> str | None:
    """HL7 TS/DT -> FHIR date (the date part only)."""
    dt = datetime_(value, ctx, where)
    return dt[:10] if dt else None


def coding_system(name: str) -> str | None:
    """Table 0396 coding-system name -> FHIR URI (HL7nnnn -> v2-nnnn, unknown -> local URI)."""
    name = name.strip()
    if not name:
        return None
    known = tables()["coding_systems"].get(name.upper())
    if known:
        return known
    if name.upper().startswith("HL7") and name[3:].isdigit():
        return f"http://terminology.hl7.org/CodeSystem/v2-{name[3:].zfill(4)}"
    if name.startswith(("http://", "https://", "urn:")):
        return name
    return f"{tables()['defaults']['local_system_base']}/cs/{name}"


def codeable_concept(comps: list[str]) -> dict | None:
    """CWE/CE/CNE components -> CodeableConcept (triplets 1-3, 4-6, 10-12; CWE.9 original text)."""
    if not comps or not any(comps):
        return None
    codings = []
    for start in (0, 3, 9):
        code = comps[start] if len(comps) > start else ""
        display = comps[start + 1] if len(comps) > start + 1 else ""
        system = comps[start + 2] if len(comps) > start + 2 else ""
        if not code:
            continue
        coding: dict = {}
        sys_uri = coding_system(system)
        if sys_uri:
            coding["system"] = sys_uri
        coding["code"] = code
        if display:
            coding["display"] = nfc(display)
        codings.append(coding)
    cc: dict = {}
    if codings:
        cc["coding"] = codings
    text = comps[8] if len(comps) > 8 and comps[8] else (comps[1] if len(comps) > 1 else "")
    if not codings and comps[0]:
        text = text or comps[0]
    if text:
        cc["text"] = nfc(text)
    return cc or None


def quantity(value: str, unit_comps: list[str], where: str) -> dict:
    """NM value + CWE unit -> Quantity; the unit as sent stays in `unit`, its UCUM code in system/code.

    The unit's spelling (CWE.1, else CWE.2: 'mmol/l', 'lần/phút', 'G/L') is looked up in
    mappings/terminology/units.yaml; a unit that table does not know keeps the system the sender named
    (CWE.3), or stays text only."""
    number = value.strip()
    if not _NUMBER.match(number):
        raise content_error(DATA_TYPE_ERROR, where, f"not a number: {value!r}")
    q: dict = {"value": _num(number)}
    comps = (unit_comps or []) + ["", "", ""]
    code, text, declared = comps[0], comps[1], comps[2]
    if code or text:
        q["unit"] = nfc(text or code)
        coded = ucum(code) or ucum(text)
        system = coding_system(declared) if declared else None
        if coded:
            q["system"] = UCUM
            q["code"] = coded[0]
        elif system and code:
            q["system"] = system
            q["code"] = code
    return q


def _num(text: str) -> int | float:
    """Keep integers integral so 135 stays 135, not 135.0 (FHIR decimals keep their precision)."""
    if "." in text:
        return float(text)
    return int(text)


def structured_numeric(comps: list[str], unit_comps: list[str], where: str) -> dict:
    """SN (comparator^num1^separator^num2) -> {valueQuantity|valueRange|valueRatio}."""
    comparator, n1, sep, n2 = (comps + ["", "", "", ""])[:4]
    if sep in ("-",) and n1 and n2:
        low, high = quantity(n1, unit_comps, where), quantity(n2, unit_comps, where)
        return {"valueRange": {"low": low, "high": high}}
    if sep in (":", "/") and n1 and n2:
        return {"valueRatio": {"numerator": quantity(n1, [], where), "denominator": quantity(n2, [], where)}}
    if n1 and not sep:
        q = quantity(n1, unit_comps, where)
        if comparator in ("<", "<=", ">", ">="):
            q["comparator"] = comparator
        elif comparator not in ("", "="):
            raise content_error(DATA_TYPE_ERROR, where, f"unknown SN comparator {comparator!r}")
        return {"valueQuantity": q}
    raise content_error(DATA_TYPE_ERROR, where, f"unreadable structured numeric {'^'.join(comps)!r}")


def _rule_matches(rule: dict, id_type: str, authority: str) -> bool:
    if rule.get("default"):
        return True
    if rule.get("typed"):
        return bool(id_type)
    types = rule.get("type")
    auths = rule.get("authority")
    if types and id_type.upper() not in types:
        return False
    if auths and authority.upper() not in auths:
        return False
    return bool(types or auths)


def identifier(rep_raw: str, ctx: Context, where: str) -> dict | None:
    """One CX repetition -> Identifier, system chosen by identifiers.yaml rules (never hard-coded)."""
    enc = ctx.encoding
    raw_comps = rep_raw.split(enc.component)
    comps = split_components(rep_raw, enc)
    value = comps[0] if comps else ""
    if not value:
        return None
    authority_subs = subcomponents(raw_comps[3], enc) if len(raw_comps) > 3 else []
    authority = authority_subs[0] if authority_subs else ""
    id_type = comps[4] if len(comps) > 4 else ""
    for rule in identifier_rules()["patient_identifier_rules"]:
        if _rule_matches(rule, id_type, authority):
            break
    else:  # pragma: no cover - the YAML ends with a default rule
        rule = {"system": "mrn", "type_code": "MR", "per_facility": True}
    if rule.get("local"):
        system = ctx.local_system(rule["local"], id_type.upper())
    else:
        system = ctx.systems[rule["system"]]
        if rule.get("per_facility"):
            system = f"{system}/{ctx.facility}"
    ident: dict = {
        "use": rule.get("use", "usual"),
        "type": {"coding": [{"system": V2_0203, "code": rule.get("type_code") or id_type}]},
        "system": system,
        "value": value,
    }
    if id_type and id_type != rule.get("type_code"):
        ident["type"]["text"] = id_type
    start = comps[6] if len(comps) > 6 else ""
    end = comps[7] if len(comps) > 7 else ""
    if start or end:
        period = {}
        if start:
            period["start"] = date_(start, ctx, where + ".7")
        if end:
            period["end"] = date_(end, ctx, where + ".8")
        ident["period"] = period
    return ident


def entity_identifier(comps: list[str], ctx: Context, kind: str) -> dict | None:
    """EI (id ^ namespace ^ universal id ^ type) -> Identifier in a facility-scoped system per kind.

    The namespace (EI.2) or OID (EI.3 with EI.4 ISO) names the issuing system when given, so two
    applications' numbers never collide."""
    comps = comps + ["", "", "", ""]
    value = comps[0]
    if not value:
        return None
    if comps[2] and comps[3].upper() == "ISO":
        system = f"urn:oid:{comps[2]}"
    elif comps[1]:
        system = ctx.local_system(kind, comps[1])
    else:
        system = ctx.local_system(kind)
    return {"system": system, "value": value}


def money(raw: str, enc: Encoding, where: str) -> dict | None:
    """CP (MO.1 & MO.2 ^ ...) or MO (quantity ^ denomination) raw text -> Money; VND when no currency given."""
    comps = raw.split(enc.component)
    first = subcomponents(comps[0], enc) if comps else []
    number = first[0] if first else ""
    if not number:
        return None
    currency = first[1] if len(first) > 1 else ""
    if not currency and len(comps) > 1 and len(first) == 1 and comps[1].isalpha():
        currency = comps[1]
    if not _NUMBER.match(number):
        raise content_error(DATA_TYPE_ERROR, where, f"not an amount: {number!r}")
    return {"value": _num(number), "currency": (currency or tables()["defaults"]["currency"]).upper()}


def organization_name(comps: list[str]) -> tuple[str, str]:
    """XON -> (name, organisation id): XON.1 name, XON.10 identifier (v2.5+) else XON.3 (older)."""
    comps = [nfc(c) for c in comps] + [""] * 10
    return comps[0], comps[9] or comps[2]


def visit_identifier(seg: Segment, n: int, ctx: Context) -> dict | None:
    """PV1-19 visit number -> Encounter.identifier (facility-scoped system from the profile set)."""
    value = seg.get(n)
    if not value:
        return None
    rule = identifier_rules()["visit_identifier"]
    system = ctx.systems[rule["system"]]
    if rule.get("per_facility"):
        system = f"{system}/{ctx.facility}"
    return {
        "use": "official",
        "type": {"coding": [{"system": V2_0203, "code": rule["type_code"]}]},
        "system": system,
        "value": value,
    }


def human_name_(comps: list[str]) -> dict | None:
    """XPN -> HumanName, family first; a whole name in XPN.1 is split the Vietnamese way."""
    comps = [nfc(c) for c in comps]
    family = comps[0] if comps else ""
    given = [c for c in comps[1:3] if c] if len(comps) > 1 else []
    if not family and not given:
        return None
    if not given and " " in family.strip():
        name = human_name(family)
    else:
        name = {"use": "official", "text": " ".join([family, *given]).strip()}
        if family:
            name["family"] = family
        if given:
            # XPN.2 often carries "VĂN AN" (middle + given): keep each word as FHIR expects.
            name["given"] = [w for g in given for w in g.split()]
    if len(comps) > 3 and comps[3]:
        name["suffix"] = [comps[3]]
    if len(comps) > 4 and comps[4]:
        name["prefix"] = [comps[4]]
    if len(comps) > 6 and comps[6]:
        use = tables()["name_use"].get(comps[6].upper())
        if use:
            name["use"] = use
    return name


def address(comps: list[str], ctx: Context) -> dict | None:
    """XAD -> Address with text filled (VN Core requires it); XAD.9 county/district -> district."""
    comps = [nfc(c) for c in comps] + [""] * 10
    line = [c for c in comps[0:2] if c]
    city, state, postal, country, kind, district = comps[2], comps[3], comps[4], comps[5], comps[6], comps[8]
    if not (line or city or state or country or district):
        return None
    addr: dict = {}
    use = tables()["address_use"].get(kind.upper()) if kind else None
    if use:
        addr["use"] = use
    # Vietnamese order, smallest unit first: số nhà/đường, phường/xã, quận/huyện, thành phố, tỉnh.
    parts: list[str] = []
    for c in [*line, district, city, state, country]:
        if c and (not parts or parts[-1] != c):
            parts.append(c)
    addr["text"] = ", ".join(parts)
    if line:
        addr["line"] = line
    if city:
        addr["city"] = city
    if district:
        addr["district"] = district
    if state:
        addr["state"] = state
    if postal:
        addr["postalCode"] = postal
    if country:
        addr["country"] = country
    if not country or country.upper() in ("VN", "VNM"):
        # names or codes of Vietnamese units: names and both eras' codes (adapters/address.py)
        era, p, d, w = codes_from_names(state, district, city)
        enrich(addr, ctx.profile_extensions, p, d, w, era=era)
    return addr


def telecom(comps: list[str], default_use: str) -> dict | None:
    """XTN -> ContactPoint (XTN.1 or XTN.4 email or XTN.6/7 area+number)."""
    comps = comps + [""] * 12
    equipment = tables()["telecom_equipment"].get(comps[2], "phone")
    value = comps[0]
    if comps[3]:
        value, equipment = comps[3], "email"
    elif not value and comps[6]:
        value = f"{comps[5]}{comps[6]}"
    if not value:
        return None
    use = tables()["telecom_use"].get(comps[1], default_use) if comps[1] else default_use
    return {"system": equipment, "value": value, "use": use}


def practitioner(comps: list[str], ctx: Context, kind: str = "Practitioner") -> tuple[str, dict] | None:
    """XCN -> (practitioner local id, Practitioner resource body without id)."""
    comps = [nfc(c) for c in comps] + [""] * 10
    pid, family, given = comps[0], comps[1], [c for c in comps[2:4] if c]
    if not pid and not family:
        return None
    res: dict = {"resourceType": kind}
    if pid:
        res["identifier"] = [{"system": ctx.local_system("practitioner"), "value": pid}]
    name_comps = [family, " ".join(given)] if given else [family]
    name = human_name_(name_comps)
    if name:
        res["name"] = [name]
    return pid or f"name:{family} {' '.join(given)}", res
