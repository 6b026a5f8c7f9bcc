"""QĐ130 value formats → FHIR primitives (Vietnam local time is UTC+07:00, no DST)."""

from __future__ import annotations

import calendar
from datetime import datetime

from adapters.i18n import Problem, msg

from .vendors import VendorProfile

TZ = "+07:00"


class BadValue(Problem):
    """A value that cannot be read; `message` says why in the reader's language (str() is English)."""


def _check(y: int, mo: int, d: int, h: int = 0, mi: int = 0, value: str = "") -> None:
    """Raise BadValue (naming the value and the impossible part) unless the parts form a real time."""
    try:
        datetime(y, mo, d, h, mi)
        return
    except ValueError as exc:
        detail = str(exc)
    # Only a bad value pays for finding out which part is impossible.
    if not 1 <= mo <= 12:
        why = msg(
            "{value!r} is not a real calendar date/time: there is no month {month}", value=value, month=mo
        )
    elif not 1 <= d <= (calendar.monthrange(y, mo)[1] if 1 <= y <= 9999 else 31):
        why = msg(
            "{value!r} is not a real calendar date/time: month {month}/{year} has no day {day}",
            value=value,
            month=mo,
            year=y,
            day=d,
        )
    elif not 0 <= h <= 23:
        why = msg("{value!r} is not a real calendar date/time: there is no hour {hour}", value=value, hour=h)
    elif not 0 <= mi <= 59:
        why = msg(
            "{value!r} is not a real calendar date/time: there is no minute {minute}", value=value, minute=mi
        )
    else:
        why = msg("{value!r} is not a real calendar date/time ({detail})", value=value, detail=detail)
    raise BadValue(why)


def to_datetime(value: str, vendor: VendorProfile | None = None) -> str:
    """yyyyMMddHHmm → FHIR dateTime with seconds and +07:00; raises ValueError if impossible."""
    if len(value) == 12 and value.isdigit():
        _check(int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:12]), value)
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:00{TZ}"
    for fmt in vendor.datetime_formats if vendor else ():
        try:
            dt = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return dt.strftime("%Y-%m-%dT%H:%M:00") + TZ
    raise BadValue(msg("{value!r} is not a valid date-time (yyyyMMddHHmm)", value=value))


def to_date(value: str, vendor: VendorProfile | None = None) -> str:
    """yyyyMMdd → FHIR date; raises ValueError if impossible."""
    if len(value) == 8 and value.isdigit():
        _check(int(value[:4]), int(value[4:6]), int(value[6:8]), value=value)
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    for fmt in vendor.date_formats if vendor else ():
        try:
            return datetime.strptime(value, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    raise BadValue(msg("{value!r} is not a valid date (yyyyMMdd)", value=value))


def to_date_or_datetime(value: str, vendor: VendorProfile | None = None) -> str:
    """8-char date or 12-char date-time (NGAY_MIEN_CCT) → FHIR date/dateTime."""
    return to_date(value, vendor) if len(value) == 8 else to_datetime(value, vendor)


def to_birth(value: str) -> tuple[str, str | None]:
    """NGAY_SINH (yyyyMMddHHmm, unknown parts 00; also yyyyMMdd / yyyy) → (FHIR date, birth time or None)."""
    if not value.isdigit() or len(value) not in (4, 8, 12):
        raise BadValue(msg("{value!r} is not a valid birth date (yyyyMMddHHmm)", value=value))
    y, mo, d = int(value[:4]), int(value[4:6] or 0), int(value[6:8] or 0)
    if y < 1800:
        raise BadValue(msg("{value!r}: impossible birth year", value=value))
    if mo == 0:
        if d:
            raise BadValue(msg("{value!r}: day given without month", value=value))
        return f"{value[:4]}", None
    if d == 0:
        _check(y, mo, 1, value=value)
        return f"{value[:4]}-{value[4:6]}", None
    hh, mm = (int(value[8:10]), int(value[10:12])) if len(value) == 12 else (0, 0)
    _check(y, mo, d, hh, mm, value)
    date = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    if len(value) == 12 and (hh or mm):
        return date, f"{date}T{value[8:10]}:{value[10:12]}:00{TZ}"
    return date, None


def to_number(value: str, vendor: VendorProfile | None = None) -> int | float:
    """Decimal text (vendor separator) → int when integral, else float; raises ValueError."""
    text = value.strip()
    if vendor is not None and vendor.decimal_separator != ".":
        text = text.replace(vendor.decimal_separator, ".")
    try:
        num = float(text)
    except ValueError:
        raise BadValue(msg("{value!r} is not a number", value=value)) from None
    if num != num or num in (float("inf"), float("-inf")):
        raise BadValue(msg("{value!r} is not a number", value=value))
    if num.is_integer() and "e" not in text.lower():
        if abs(num) >= _INT_LIMIT:
            # No QĐ130 amount or count comes near; past 64 bits the stored JSON cannot hold it, and the
            # failed write took every other record of the batch with it (found by the parser fuzz run).
            raise BadValue(msg("{value!r} is out of range", value=value))
        return int(num)
    return num


_INT_LIMIT = 2.0**63


FORMATTERS = {
    "datetime12": to_datetime,
    "date8": to_date,
    "date_or_datetime": to_date_or_datetime,
    "number": to_number,
}
