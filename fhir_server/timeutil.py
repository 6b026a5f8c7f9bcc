"""Time as integer microseconds since the epoch (UTC): cheap to compare and index on both databases."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime


def now_us() -> int:
    """Current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def instant(us: int) -> str:
    """FHIR instant text (UTC, microseconds) for a microsecond timestamp."""
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def http_date(us: int) -> str:
    """RFC 7231 date for the Last-Modified header."""
    return format_datetime(datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc), usegmt=True)


def parse_instant(text: str) -> int:
    """Parse a FHIR instant/dateTime/date (timezone-less values are taken as UTC) to microseconds."""
    value = text.strip().replace("Z", "+00:00")
    if len(value) == 4:
        value += "-01-01"
    elif len(value) == 7:
        value += "-01"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1_000_000)
