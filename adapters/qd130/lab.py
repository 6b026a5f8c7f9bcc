"""XML4 result details: LOINC coding, UCUM value, reference range and interpretation (H/L/N…).

LOINC and UCUM come from mappings/terminology (lab-loinc.csv, units.yaml); the reading of the
reader's words and written ranges from mappings/qd130/interpretation.yaml.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mappings import load_yaml
from mappings.terminology import fold, lab_loinc, ucum

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


@lru_cache(maxsize=1)
def _rules() -> tuple[str, list[tuple[str, str, str]], re.Pattern]:
    """(system, [(folded phrase, code, display)], range pattern)."""
    data = load_yaml("qd130/interpretation.yaml")
    words = [(fold(w["phrase"]), w["code"], w["display"]) for w in data["words"]]
    labels = "|".join(re.escape(x) for x in sorted(data["range_labels"], key=len, reverse=True))
    return data["system"], words, re.compile(data["range"].replace("{labels}", labels), re.IGNORECASE)


def _num(text: str) -> float | int:
    value = float(text.replace(",", "."))
    return int(value) if value.is_integer() else value


def loinc_coding(row: dict) -> dict | None:
    """LOINC coding for an XML4 analyte (by MA_CHI_SO, else TEN_CHI_SO; unit picks the variant)."""
    test = lab_loinc(row.get("MA_CHI_SO"), row.get("TEN_CHI_SO"), unit=row.get("DON_VI_DO"))
    if test is None:
        return None
    return {"system": LOINC, "code": test.loinc_code, "display": test.loinc_long_name}


def quantity(value: int | float, unit: str | None) -> dict:
    """valueQuantity: the unit as written, plus the UCUM code when the spelling is known."""
    q: dict = {"value": value}
    if unit:
        q["unit"] = unit
        coded = ucum(unit)
        if coded:
            q["system"] = UCUM
            q["code"] = coded[0]
    return q


def reference_range(texts: list[str], unit: str | None) -> dict | None:
    """The first reference range written in the texts ('CSBT: 4 - 10', 'Tham chiếu: < 5'), or None."""
    _, _, pattern = _rules()
    for text in texts:
        m = pattern.search(text or "")
        if not m:
            continue
        rng: dict = {"text": m.group(0).strip()}
        if m["low"] is not None:
            rng["low"] = quantity(_num(m["low"]), unit)
            rng["high"] = quantity(_num(m["high"]), unit)
        elif m["op"] in ("<", "<=", "≤"):
            rng["high"] = quantity(_num(m["bound"]), unit)
        else:
            rng["low"] = quantity(_num(m["bound"]), unit)
        return rng
    return None


def interpretation(texts: list[str], value: float | int | None, rng: dict | None) -> dict | None:
    """Interpretation from the reader's words (KET_LUAN), else from the value against the written range."""
    system, words, _ = _rules()
    for text in texts:
        folded = fold(text or "")
        for phrase, code, display in words:
            if phrase in folded:
                return {"coding": [{"system": system, "code": code, "display": display}], "text": text}
    if value is None or not rng:
        return None
    low, high = (rng.get("low") or {}).get("value"), (rng.get("high") or {}).get("value")
    code, display = "N", "Normal"
    if high is not None and value > high:
        code, display = "H", "High"
    elif low is not None and value < low:
        code, display = "L", "Low"
    return {"coding": [{"system": system, "code": code, "display": display}]}
