"""LIEU_DUNG text ("1 viên/lần * 3 lần/ngày * 5 ngày [3 viên/ngày]") → FHIR Dosage elements.

Patterns live in mappings/qd130/dosage.yaml; a part that matches none is left in Dosage.text only.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mappings import load_yaml
from mappings.terminology import ucum

UCUM = "http://unitsofmeasure.org"
_SPLIT = re.compile(r"\s*(?:\*|×|\sx\s)\s*")
_TOTAL = re.compile(r"\[[^\]]*\]")


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, dict[str, str]]:
    """Compiled dose / frequency / duration patterns and the time-unit table."""
    data = load_yaml("qd130/dosage.yaml")
    flags = re.IGNORECASE
    return (
        re.compile(data["dose"], flags),
        re.compile(data["frequency"], flags),
        re.compile(data["duration"], flags),
        {k.lower(): v for k, v in data["time_units"].items()},
    )


def _number(text: str) -> int | float:
    """'1', '0,5', '1/2' → a number (int when whole)."""
    text = text.replace(",", ".")
    if "/" in text:
        num, den = text.split("/", 1)
        value = int(num) / int(den)
    else:
        value = float(text)
    return int(value) if value.is_integer() else round(value, 4)


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple:
    """(dose, frequency, duration) tuples read from the text, each None when not found."""
    dose_re, freq_re, dur_re, units = _patterns()
    dose = freq = dur = None
    for part in _SPLIT.split(_TOTAL.sub("", text).strip()):
        part = part.strip()
        if not part:
            continue
        if dose is None and (m := dose_re.match(part)):
            dose = (_number(m["value"]), m["unit"].strip())
        elif freq is None and (m := freq_re.match(part)):
            period = int(m["period"]) if m["period"] and m["period"].strip() else 1
            freq = (int(m["value"]), period, units[m["unit"].lower()])
        elif dur is None and (m := dur_re.match(part)):
            dur = (int(m["value"]), m["unit"], units[m["unit"].lower()])
    return dose, freq, dur


def structured_dosage(text: str | None) -> dict:
    """The Dosage elements (timing, doseAndRate) that LIEU_DUNG states explicitly; {} when none."""
    if not text:
        return {}
    dose, freq, dur = _parse(text)
    out: dict = {}
    repeat: dict = {}
    if freq:
        repeat.update({"frequency": freq[0], "period": freq[1], "periodUnit": freq[2]})
    if dur:
        repeat["boundsDuration"] = {"value": dur[0], "unit": dur[1], "system": UCUM, "code": dur[2]}
    if repeat:
        out["timing"] = {"repeat": repeat}
    if dose:
        quantity: dict = {"value": dose[0], "unit": dose[1]}
        coded = ucum(dose[1])
        if coded:
            quantity.update({"system": UCUM, "code": coded[0]})
        out["doseAndRate"] = [{"doseQuantity": quantity}]
    return out
