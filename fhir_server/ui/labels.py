"""Turning FHIR values into the short Vietnamese labels the clinician view shows.

Pure functions over parsed resources; the vocabulary (gender, encounter class, observation category)
lives in `labels.yaml` beside this module.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources

import yaml

from fhir_server.search.values import date_range
from mappings import facilities

# Facility code inside identifier systems such as urn:vn:cskcb:79001:ma-hsba or .../sid/mrn/79001.
_FACILITY_IN_SYSTEM = re.compile(r"(?:cskcb[:/]|/mrn/)(\d{5})(?:\b|$)")
_FACILITY_CODE = re.compile(r"^\d{5}$")
FACILITY_SYSTEMS = ("http://fhir.hl7.org.vn/core/sid/ma-cskcb", "urn:oid:1.2.840.113883.2.26.1.1")


@cache
def vocabulary() -> dict:
    """The UI vocabulary (labels.yaml)."""
    return yaml.safe_load(
        resources.files("fhir_server.ui").joinpath("labels.yaml").read_text(encoding="utf-8")
    )


_DATE_PARTS = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}))?)?)?")


def fhir_date(text: str | None, with_time: bool = True) -> str:
    """ "2024-07-09T09:00:00+07:00" -> "09/07/2024 09:00" (the wall time as the hospital sent it)."""
    if not text or not isinstance(text, str):
        return ""
    return _display_date(text, with_time)


# A record repeats the same few hundred instants (every result of a visit has its time): parse each once.
@lru_cache(maxsize=16384)
def _display_date(text: str, with_time: bool) -> str:
    m = _DATE_PARTS.match(text)
    if not m:
        return text
    y, mo, d, hh, mm = m.groups()
    out = "/".join(x for x in (d, mo, y) if x)
    if with_time and hh:
        out += f" {hh}:{mm}"
    return out


def sort_key(text: str | None) -> int:
    """Microseconds of a FHIR date (0 when absent), for ordering across time zones and precisions."""
    return _sort_key(text) if isinstance(text, str) else 0


@lru_cache(maxsize=16384)
def _sort_key(text: str) -> int:
    rng = date_range(text)
    return rng[0] if rng else 0


def gender(code: str | None) -> str:
    """Administrative gender in Vietnamese."""
    return vocabulary()["gender"].get(code or "unknown", code or "")


def concept_text(cc: dict | None) -> str:
    """Best human text of a CodeableConcept: text, else the first coding display, else the code."""
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"])
    for coding in cc.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    for coding in cc.get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])
    return ""


def coding_code(cc: dict | None, system: str) -> str | None:
    """The code of the first coding with this system."""
    for coding in (cc or {}).get("coding") or []:
        if coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return None


def human_name(patient: dict) -> str:
    """Display name: name.text, else family + given (Vietnamese order)."""
    names = patient.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not official:
        return ""
    if official.get("text"):
        return str(official["text"])
    return " ".join([official.get("family", ""), *official.get("given", [])]).strip()


def identifier(resource: dict, system: str) -> str | None:
    """Value of the first identifier with this system."""
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def quantity(q: dict | None) -> tuple[str, str]:
    """(value, unit) of a Quantity as text."""
    if not isinstance(q, dict) or "value" not in q:
        return "", ""
    value = q["value"]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return (q.get("comparator", "") + text), str(q.get("unit") or q.get("code") or "")


def reference_range(obs: dict) -> str:
    """Observation.referenceRange as "low – high unit" (or its text)."""
    parts = []
    for rr in obs.get("referenceRange") or []:
        if rr.get("text"):
            parts.append(str(rr["text"]))
            continue
        low, low_unit = quantity(rr.get("low"))
        high, high_unit = quantity(rr.get("high"))
        unit = high_unit or low_unit
        if low and high:
            parts.append(f"{low} – {high} {unit}".strip())
        elif low:
            parts.append(f"≥ {low} {unit}".strip())
        elif high:
            parts.append(f"≤ {high} {unit}".strip())
    return "; ".join(parts)


def observation_value(obs: dict) -> tuple[str, str]:
    """(value, unit) of an Observation whatever its value[x]; a conclusion note when there is none."""
    if "valueQuantity" in obs:
        return quantity(obs["valueQuantity"])
    for key in ("valueString", "valueInteger", "valueBoolean", "valueDateTime", "valueTime"):
        if key in obs:
            return str(obs[key]), ""
    if "valueCodeableConcept" in obs:
        return concept_text(obs["valueCodeableConcept"]), ""
    notes = [n.get("text", "") for n in obs.get("note") or [] if n.get("text")]
    return "; ".join(notes), ""


def facility_from_identifiers(resource: dict) -> str | None:
    """A 5-digit facility code named by an identifier system (urn:vn:cskcb:NNNNN:..., .../mrn/NNNNN)."""
    for ident in resource.get("identifier") or []:
        system = ident.get("system") if isinstance(ident, dict) else None
        if isinstance(system, str):
            m = _FACILITY_IN_SYSTEM.search(system)
            if m:
                return m.group(1)
    source = (resource.get("meta") or {}).get("source")
    if isinstance(source, str):
        m = re.search(r"(?<!\d)(\d{5})(?!\d)", source)
        if m:
            return m.group(1)
    return None


def organization_label(org: dict) -> str:
    """Organization.name, else the facility registry's name of its code, else "CSKCB <code>"."""
    if org.get("name"):
        return str(org["name"])
    for system in FACILITY_SYSTEMS:
        code = identifier(org, system)
        if code:
            return facility_label(code)
    for ident in org.get("identifier") or []:
        value = ident.get("value") if isinstance(ident, dict) else None
        if isinstance(value, str) and _FACILITY_CODE.match(value):
            return facility_label(value)
    return ""


def facility_label(code: str) -> str:
    """Name of a facility code from the registry (mappings/facilities, department list first), else "CSKCB <code>"."""
    # QĐ130 Organizations carry only MA_CSKCB; the registry gives the name a doctor recognises.
    known = facilities.lookup(code)
    return known.name if known else f"CSKCB {code}"
