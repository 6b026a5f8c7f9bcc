"""Turn FHIR element values into index values: date ranges, tokens, strings, references, quantities."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from fhir_server.search.fhirpath import ref_type
from fhir_server.text import fold, nfc
from mappings.admin_units import strip_prefix

STRING_MAX = 255
URI_MAX = 1000
MIN_US = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)
_CONTACT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}


def _us(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple()) * 1_000_000 + dt.microsecond


def date_range(text: str) -> tuple[int, int] | None:
    """Inclusive [lo, hi] microsecond range a FHIR date/dateTime/instant covers at its precision."""
    return _date_range(text) if isinstance(text, str) else None


# Dates repeat a lot within a batch (a visit's date is on most of its resources).
@lru_cache(maxsize=16384)
def _date_range(text: str) -> tuple[int, int] | None:
    m = _DATE.match(text.strip())
    if not m:
        return None
    y = int(m["y"])
    try:
        if m["m"] is None:
            lo, hi = datetime(y, 1, 1), datetime(y + 1, 1, 1) if y < 9999 else None
        elif m["d"] is None:
            mo = int(m["m"])
            lo = datetime(y, mo, 1)
            hi = datetime(y + (mo == 12), mo % 12 + 1, 1) if y < 9999 or mo < 12 else None
        elif m["H"] is None:
            lo = datetime(y, int(m["m"]), int(m["d"]))
            hi = lo + timedelta(days=1)
        else:
            frac = m["f"] or ""
            micro = int((frac + "000000")[:6]) if frac else 0
            lo = datetime(y, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"] or 0), int(m["S"] or 0), micro)
            if m["S"] is None:
                step = timedelta(minutes=1)
            elif not frac:
                step = timedelta(seconds=1)
            else:
                step = timedelta(microseconds=10 ** (6 - min(len(frac), 6)))
            hi = lo + step
            tz = m["tz"]
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                digits = tz[1:].replace(":", "")
                offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                lo, hi = lo - sign * offset, hi - sign * offset
    except (ValueError, OverflowError):
        return None
    lo_us = _us(lo.replace(tzinfo=timezone.utc))
    hi_us = _us(hi.replace(tzinfo=timezone.utc)) - 1 if hi is not None else MAX_US
    return lo_us, hi_us


def date_rows(value) -> list[tuple[int, int]]:
    """Ranges for a date-like element: date/dateTime/instant, Period, Timing."""
    if isinstance(value, str):
        rng = date_range(value)
        return [rng] if rng else []
    if not isinstance(value, dict):
        return []
    if "start" in value or "end" in value:
        start = date_range(value["start"]) if "start" in value else None
        end = date_range(value["end"]) if "end" in value else None
        if start is None and end is None:
            return []
        return [(start[0] if start else MIN_US, end[1] if end else MAX_US)]
    if "event" in value or "repeat" in value:
        out = [r for e in value.get("event", []) if (r := date_range(e))]
        bounds = (value.get("repeat") or {}).get("boundsPeriod")
        if bounds:
            out += date_rows(bounds)
        return out
    return []


def token_rows(value) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, folded text) triples for Coding, CodeableConcept, Identifier, ContactPoint, primitives."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false", None)]
    if isinstance(value, (str, int, float)):
        return [(None, str(value), None)]
    if not isinstance(value, dict):
        return []
    out: list[tuple[str | None, str | None, str | None]] = []
    if "coding" in value or ("text" in value and "value" not in value and "code" not in value):
        for coding in value.get("coding") or []:
            if isinstance(coding, dict) and (coding.get("code") or coding.get("system")):
                display = coding.get("display")
                out.append(
                    (coding.get("system"), coding.get("code"), _fold_short(display) if display else None)
                )
        if isinstance(value.get("text"), str):
            out.append((None, None, _fold_short(value["text"])))
        return out
    if "code" in value:
        display = value.get("display")
        return [(value.get("system"), str(value["code"]), _fold_short(display) if display else None)]
    if "value" in value:
        system = value.get("system")
        text = None
        type_cc = value.get("type")
        if isinstance(type_cc, dict) and isinstance(type_cc.get("text"), str):
            text = _fold_short(type_cc["text"])
        if system in _CONTACT_SYSTEMS or isinstance(value.get("value"), (str, int, float)):
            return [(system, str(value["value"]), text)]
    if "system" in value:
        return [(value["system"], None, None)]
    return out


def identifier_type_rows(value) -> list[tuple[str | None, str]]:
    """(type system, "type code|value") for Identifier :of-type search."""
    if not isinstance(value, dict) or "value" not in value or not isinstance(value.get("type"), dict):
        return []
    return [
        (c.get("system"), f"{c.get('code')}|{value['value']}")
        for c in value["type"].get("coding") or []
        if isinstance(c, dict) and c.get("code")
    ]


def _fold_short(text: str) -> str:
    return fold(str(text))[:STRING_MAX]


_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_PLACE_PARTS = ("line", "city", "district", "state")  # only an Address has these
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _parts(value: dict, keys: tuple[str, ...]) -> list[str]:
    """The string (or list-of-strings) elements `keys` of a HumanName or Address, in that order."""
    out: list[str] = []
    for key in keys:
        part = value.get(key)
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, list):
            out.extend(p for p in part if isinstance(p, str))
    return out


def _unit_codings(extensions: list, unit: str | None) -> list[dict]:
    """Codings of administrative-unit extensions on an Address (simple or complex, any guide or era).

    A unit's kind is the last segment of the extension's url (after '/' or '#', or the url of a complex
    extension's part): 'province' and 'state' are provinces (e.g. vn-ext-province, address-old-province,
    administrative-address#state); `unit` None takes every unit (ward, district too)."""
    out: list[dict] = []
    for ext in extensions or ():
        if not isinstance(ext, dict):
            continue
        url = str(ext.get("url", ""))
        kind = re.split(r"[/#]", url)[-1]
        if isinstance(ext.get("extension"), list):
            out.extend(_unit_codings(ext["extension"], unit))
        if unit is not None and not ("province" in kind or kind == "state"):
            continue
        coding = ext.get("valueCoding")
        concept = ext.get("valueCodeableConcept")
        codings = [coding] if isinstance(coding, dict) else []
        if isinstance(concept, dict):
            codings += [c for c in concept.get("coding") or [] if isinstance(c, dict)]
        out.extend(codings)
    return out


def _unit_names(texts: list[str]) -> list[str]:
    """Each unit name also without its type prefix ('Thành phố Hồ Chí Minh' -> 'Hồ Chí Minh'), so a
    search by the bare name finds it (string search matches from the start)."""
    out: list[str] = []
    for text in texts:
        out.append(text)
        bare = strip_prefix(text)
        if bare != text:
            out.append(bare)
    return out


def address_unit_strings(addresses, unit: str | None) -> list[str]:
    """Names and codes of the administrative units an Address list carries as extensions (both eras)."""
    out: list[str] = []
    for address in addresses if isinstance(addresses, list) else [addresses]:
        if not isinstance(address, dict):
            continue
        for coding in _unit_codings(address.get("extension") or [], unit):
            out.extend(str(coding[k]) for k in ("code", "display") if isinstance(coding.get(k), str))
        if unit is not None and isinstance(address.get("state"), str):
            out.append(address["state"])
    return _unit_names(out)


def string_values(value) -> list[str]:
    """Searchable strings of a string, HumanName, Address or other element (original text)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    if not (any(k in value for k in _NAME_PARTS) and not any(k in value for k in _PLACE_PARTS)):
        # an Address: its parts, plus the unit names and codes of both eras its extensions carry
        return _unit_names(_parts(value, _ADDRESS_PARTS)) + address_unit_strings(value, None)
    out = _parts(value, _NAME_PARTS)
    family = value.get("family")
    given = [g for g in value.get("given") or [] if isinstance(g, str)]
    # Vietnamese names read family first ("Nguyễn Văn An"); Western order is indexed too.
    if isinstance(family, str) and given:
        out.append(" ".join([family, *given]))
        out.append(" ".join([*given, family]))
    return out


def string_rows(value) -> list[tuple[str, str]]:
    """(folded, exact NFC) pairs for a string-type parameter."""
    return [(fold(s)[:STRING_MAX], nfc(s)[:STRING_MAX]) for s in string_values(value) if s]


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """(target type, target id, absolute url) of a reference string; local refs have url None."""
    if ref.startswith("#"):
        return None, None, None
    if "://" in ref or ref.startswith("urn:"):
        base = ref.split("|", 1)[0]
        parts = base.rstrip("/").split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2][:1].isupper() and "://" in ref:
            return parts[-2], parts[-1][:64], base[:URI_MAX]
        return None, None, base[:URI_MAX]
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2:
        return parts[-2], parts[-1][:64], None
    return None, None, None


def reference_rows(value) -> list[tuple[str | None, str | None, str | None]]:
    """(type, id, url) for a Reference, canonical or uri element."""
    if isinstance(value, str):
        return [parse_reference(value)] if value else []
    if not isinstance(value, dict):
        return []
    ref = value.get("reference")
    if isinstance(ref, str) and ref:
        parsed = parse_reference(ref)
        if parsed != (None, None, None):
            return [parsed]
    return []


def quantity_rows(value) -> list[tuple[str | None, str | None, str | None, float]]:
    """(system, code, unit, value) for Quantity, Age, Duration, Money, Range (low/high) or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(None, None, None, float(value))]
    if not isinstance(value, dict):
        return []
    if "low" in value or "high" in value:
        return [r for k in ("low", "high") if k in value for r in quantity_rows(value[k])]
    num = value.get("value")
    if not isinstance(num, (int, float)) or isinstance(num, bool):
        return []
    if "currency" in value:
        return [("urn:iso:std:iso:4217", value["currency"], value["currency"], float(num))]
    return [(value.get("system"), value.get("code") or value.get("unit"), value.get("unit"), float(num))]


def number_rows(value) -> list[float]:
    """Numbers of a decimal/integer element (or a Quantity's value)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        try:
            return [float(value)]
        except ValueError:
            return []
    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
        return [float(value["value"])]
    return []


def uri_rows(value) -> list[str]:
    """URI strings of a uri/url/canonical element."""
    if isinstance(value, str):
        return [value[:URI_MAX]]
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return [value["reference"][:URI_MAX]]
    return []


__all__ = [
    "date_range",
    "date_rows",
    "token_rows",
    "string_rows",
    "reference_rows",
    "quantity_rows",
    "number_rows",
    "uri_rows",
    "parse_reference",
    "identifier_type_rows",
    "ref_type",
]
