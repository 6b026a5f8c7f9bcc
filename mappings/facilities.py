"""Health facilities by BHYT facility code (MA_CSKCB): name, level, route (tuyến), rank (hạng), province.

Shipped rows (mappings/facilities/facilities.csv) are the few whose code and name a readable source states;
a health department keeps the complete list as a CSV with the same columns and loads it with load_csv +
merge (the `lienthong facilities load FILE` command). Department rows take precedence over shipped ones.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mappings import admin_units

SHIPPED = Path(__file__).parent / "facilities" / "facilities.csv"
COLUMNS = ("ma_cskcb", "name", "level", "tuyen", "hang", "province_old", "province_new", "source")
REQUIRED = ("ma_cskcb", "name")
# chars 1-2: old province (QĐ 124/2004) or 97 Ministry of Defence / 98 Ministry of Public Security; chars 3-5:
# a serial, in practice sometimes with letters (Hanoi commune stations such as 01C51)
CODE_RE = re.compile(r"^[0-9]{2}[0-9A-Z]{3}$")
MINISTRY_PREFIXES = {"97": "Bộ Quốc phòng", "98": "Bộ Công an"}

# accepted spellings (accent-free, lower case, as admin_units.fold gives them) -> canonical value
LEVELS = {
    "ban dau": "ban-dau",
    "co ban": "co-ban",
    "chuyen sau": "chuyen-sau",
    "cap kham benh chua benh ban dau": "ban-dau",
    "cap kham benh chua benh co ban": "co-ban",
    "cap kham benh chua benh chuyen sau": "chuyen-sau",
}
TUYEN = {
    "trung uong": "trung-uong",
    "tw": "trung-uong",
    "1": "trung-uong",
    "tinh": "tinh",
    "2": "tinh",
    "huyen": "huyen",
    "3": "huyen",
    "xa": "xa",
    "4": "xa",
}
HANG = {
    "dac biet": "dac-biet",
    "i": "I",
    "ii": "II",
    "iii": "III",
    "iv": "IV",
    "1": "I",
    "2": "II",
    "3": "III",
}


@dataclass(frozen=True, slots=True)
class Facility:
    """One facility; empty strings where the list does not say."""

    ma_cskcb: str
    name: str
    level: str = ""
    tuyen: str = ""
    hang: str = ""
    province_old: str = ""
    province_new: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected CSV row: its line number in the file, the column, and why (Vietnamese, English)."""

    line: int
    column: str
    vi: str
    en: str


def _canonical(value: str, table: dict[str, str]) -> str | None:
    """The canonical spelling of a level/route/rank value; '' for blank, None when not recognised."""
    if not value.strip():
        return ""
    return table.get(admin_units.fold(value))


def _validate(raw: dict[str, str], line: int) -> tuple[Facility | None, list[RowError]]:
    """One CSV row -> a Facility, or the errors that reject it."""
    row = {k: (raw.get(k) or "").strip() for k in COLUMNS}
    errors: list[RowError] = []

    def err(column: str, vi: str, en: str) -> None:
        errors.append(RowError(line, column, vi, en))

    for column in REQUIRED:
        if not row[column]:
            err(column, f"Thiếu giá trị cột {column}", f"{column} is empty")
    code = row["ma_cskcb"].upper()
    if code and not CODE_RE.match(code):
        err(
            "ma_cskcb",
            f"Mã CSKCB {code!r} phải gồm 5 ký tự (2 chữ số đầu)",
            f"MA_CSKCB {code!r} must be 5 characters",
        )
    elif code and code[:2] not in MINISTRY_PREFIXES and admin_units.province(code[:2], "old") is None:
        err(
            "ma_cskcb",
            f"Mã CSKCB {code}: {code[:2]} không phải mã tỉnh",
            f"MA_CSKCB {code}: {code[:2]} is no province",
        )
    values = {}
    for column, table, what_vi in (
        ("level", LEVELS, "cấp chuyên môn"),
        ("tuyen", TUYEN, "tuyến"),
        ("hang", HANG, "hạng"),
    ):
        values[column] = _canonical(row[column], table)
        if values[column] is None:
            allowed = ", ".join(sorted(set(table.values())))
            err(
                column,
                f"Giá trị {what_vi} {row[column]!r} không hợp lệ ({allowed})",
                f"invalid {column} {row[column]!r}",
            )
    p_old = admin_units.province(row["province_old"], "old") if row["province_old"] else None
    p_new = admin_units.province(row["province_new"], "new") if row["province_new"] else None
    if row["province_old"] and p_old is None:
        err(
            "province_old",
            f"Mã tỉnh cũ {row['province_old']!r} không có",
            f"unknown old province {row['province_old']!r}",
        )
    if row["province_new"] and p_new is None:
        err(
            "province_new",
            f"Mã tỉnh mới {row['province_new']!r} không có",
            f"unknown new province {row['province_new']!r}",
        )
    if p_old and p_new and p_new.code not in admin_units.new_province_codes(p_old.code):
        err(
            "province_new",
            f"Tỉnh mới {p_new.code} không phải nơi tỉnh cũ {p_old.code} được sáp nhập vào",
            f"new province {p_new.code} is not what old province {p_old.code} became",
        )
    if errors:
        return None, errors
    new_code = p_new.code if p_new else ""
    if p_old and not p_new:
        merged = admin_units.new_province_codes(p_old.code)
        new_code = merged[0] if len(merged) == 1 else ""
    facility = Facility(
        code,
        row["name"],
        values["level"] or "",
        values["tuyen"] or "",
        values["hang"] or "",
        p_old.code if p_old else "",
        new_code,
        row["source"],
    )
    return facility, []


def parse_csv(text: str) -> tuple[list[Facility], list[RowError]]:
    """Validate CSV text (header row, '#' comment lines allowed): good rows and per-row errors."""
    lines = text.lstrip("\ufeff").splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if not line.lstrip().startswith("#")]
    if not numbered:
        return [], [RowError(1, "", "Tệp rỗng", "empty file")]
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in numbered)))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        cols = ", ".join(missing)
        return [], [RowError(numbered[0][0], cols, f"Thiếu cột: {cols}", f"missing columns: {cols}")]
    rows: list[Facility] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(reader, start=1):
        line = numbered[index][0]
        if not any((v or "").strip() for v in raw.values()):
            continue
        facility, row_errors = _validate(raw, line)
        if facility and facility.ma_cskcb in seen:
            code = facility.ma_cskcb
            first = seen[code]
            row_errors = [
                RowError(line, "ma_cskcb", f"Mã {code} trùng dòng {first}", f"{code} repeats line {first}")
            ]
            facility = None
        errors.extend(row_errors)
        if facility:
            seen[facility.ma_cskcb] = line
            rows.append(facility)
    return rows, errors


def load_csv(path: str | Path) -> tuple[list[Facility], list[RowError]]:
    """Read and validate a facility CSV (UTF-8, with or without BOM): good rows and per-row errors."""
    return parse_csv(Path(path).read_text(encoding="utf-8-sig"))


@cache
def shipped() -> dict[str, Facility]:
    """The facilities shipped with Lienthong, by code."""
    rows, errors = load_csv(SHIPPED)
    if errors:
        raise ValueError(f"{SHIPPED}: {errors[0]}")
    return {f.ma_cskcb: f for f in rows}


_department: dict[str, Facility] = {}
# Bumped on every change of the department rows, so caches of names (the clinician view's) know to rebuild.
_revision = [0]


def merge(rows: list[Facility]) -> None:
    """Add department rows to this process's registry; they override shipped rows with the same code."""
    _department.update({f.ma_cskcb: f for f in rows})
    _revision[0] += 1


def clear_department() -> None:
    """Forget department rows merged into this process (shipped rows stay)."""
    _department.clear()
    _revision[0] += 1


def revision() -> int:
    """A number that changes whenever this process's department rows change."""
    return _revision[0]


def lookup(code: str | None) -> Facility | None:
    """The facility with this MA_CSKCB (department list first, then shipped), or None."""
    if not code:
        return None
    key = code.strip().upper()
    return _department.get(key) or shipped().get(key)


def all_facilities() -> list[Facility]:
    """Every known facility (department rows replacing shipped ones), by code."""
    merged = {**shipped(), **_department}
    return [merged[k] for k in sorted(merged)]
