"""Per-record checks of a decoded HOSO: formats, mandatory fields, identifiers, cross-table keys."""

from __future__ import annotations

import re

from adapters.base import RecordError
from mappings import load_yaml

from . import icd
from .envelope import HosoData, tables_config
from .values import FORMATTERS, to_birth
from .vendors import VendorProfile

_BHYT_LEGACY = re.compile(r"^[A-Z]{2}[1-5]\d{12}$")
_PASSPORT = re.compile(r"^[A-Z]\d{7}$")


def _codes() -> dict:
    return load_yaml("qd130/codes.yaml")


def check_cccd(value: str, birth_year: int | None = None, gender: str | None = None) -> str | None:
    """Return why an SO_CCCD value is invalid, or None. 12-digit CCCD structure, 9-digit CMND, passport."""
    if _PASSPORT.match(value):
        return None
    if not value.isdigit():
        return "must be 12 digits (CCCD), 9 digits (CMND) or a passport number (1 letter + 7 digits)"
    if len(value) == 9:
        return None
    if len(value) != 12:
        return f"has {len(value)} digits; a CCCD has 12"
    codes = _codes()
    if value[:3] not in codes["cccd_province_codes"]:
        return f"digits 1-3 {value[:3]!r} are not a province code"
    century, sex = codes["cccd_century_sex"][value[3]]
    year = century + int(value[4:6])
    if birth_year is not None and year != birth_year:
        return f"digits 4-6 encode birth year {year}, but NGAY_SINH says {birth_year}"
    if gender in ("male", "female") and sex != gender:
        return f"digit 4 encodes sex {sex}, but GIOI_TINH says {gender}"
    return None


def check_bhyt(value: str) -> str | None:
    """Return why one MA_THE_BHYT value is invalid, or None (15-char legacy, 10-digit BHXH, 12-digit CCCD)."""
    if value.isdigit() and len(value) in (10, 12):
        return None
    if len(value) == 15 and _BHYT_LEGACY.match(value):
        return None
    return (
        "must be 15 chars (2 letters + benefit digit 1-5 + 2-digit province + 10 digits), "
        "10 digits (BHXH number) or 12 digits (CCCD)"
    )


def _row_loc(loai: str, pos: int, n: int, record: str, fieldname: str) -> str:
    """Location string like XML2/CHI_TIET_THUOC[3]/DON_GIA (index only for list tables)."""
    if record.startswith("CHI_TIEU") or record == "TONG_HOP":
        return f"{loai}/{record}/{fieldname}"
    return f"{loai}/{record}[{pos}]/{fieldname}"


def validate(data: HosoData, vendor: VendorProfile, icd10_path: str | None = None) -> None:
    """Append errors and warnings to data; never raises. `icd10_path` is Settings.icd10_path."""
    cfg = tables_config()
    tables = cfg["tables"]
    sev = cfg.get("severity", {})
    key = data.ma_lk
    err, warn = data.errors, data.warnings

    xml1 = data.tables.get("XML1")
    if not xml1:
        err.append(RecordError("XML1", "XML1 (TONG_HOP) is missing; every HOSO needs one", key))
        return
    for problem in icd.check(data.tables, vendor, key, icd10_path):
        (err if problem.severity == "error" else warn).append(problem)
    if len(xml1) > 1:
        err.append(RecordError("XML1", f"{len(xml1)} TONG_HOP records in one HOSO; expected 1", key))
    row1 = xml1[0]

    for loai, rows in data.tables.items():
        record = tables[loai]["record"]
        fmts = cfg["formats"].get(loai, {})
        req_e = cfg["required_errors"].get(loai, ())
        req_w = cfg["required_warnings"].get(loai, ())
        n = len(rows)
        for pos, row in enumerate(rows, start=1):
            for f in req_e:
                if f not in row:
                    err.append(
                        RecordError(
                            _row_loc(loai, pos, n, record, f), "mandatory field is empty or missing", key
                        )
                    )
            for f in req_w:
                if f not in row:
                    warn.append(
                        RecordError(
                            _row_loc(loai, pos, n, record, f),
                            "mandatory field is empty or missing",
                            key,
                            "warning",
                        )
                    )
            for f, kind in fmts.items():
                v = row.get(f)
                if v is None:
                    continue
                if kind == "birth":
                    try:
                        to_birth(v)
                    except ValueError as exc:
                        err.append(RecordError(_row_loc(loai, pos, n, record, f), str(exc), key))
                    continue
                try:
                    FORMATTERS[kind](v, vendor)
                except ValueError as exc:
                    msg = str(exc) if kind != "number" else f"{v!r} is not a number"
                    err.append(RecordError(_row_loc(loai, pos, n, record, f), msg, key))
            if loai != "XML1" and key and "MA_LK" in row and row["MA_LK"] != key:
                err.append(
                    RecordError(
                        _row_loc(loai, pos, n, record, "MA_LK"),
                        f"MA_LK {row['MA_LK']!r} differs from XML1 MA_LK {key!r}",
                        key,
                    )
                )

    _check_xml1(row1, key, sev, err, warn)


def _check_xml1(row: dict, key: str | None, sev: dict, err: list, warn: list) -> None:
    """Identity and chronology checks on TONG_HOP."""
    loc = "XML1/TONG_HOP/"
    gender_map = _codes()["maps"]["gioi_tinh"]["codes"]
    g = row.get("GIOI_TINH")
    gender = None
    if g is not None:
        if g in gender_map:
            gender = gender_map[g]["target"]
        else:
            warn.append(
                RecordError(
                    loc + "GIOI_TINH", f"{g!r} is not 1, 2 or 3; gender set to unknown", key, "warning"
                )
            )
    birth_year = None
    b = row.get("NGAY_SINH")
    if b and b[:4].isdigit():
        birth_year = int(b[:4])
    cccd = row.get("SO_CCCD")
    if cccd:
        why = check_cccd(cccd, birth_year, gender)
        if why:
            target = err if sev.get("cccd_format", "error") == "error" else warn
            target.append(
                RecordError(
                    loc + "SO_CCCD", f"invalid CCCD: {why}", key, "error" if target is err else "warning"
                )
            )
    cards = row.get("MA_THE_BHYT")
    if cards:
        for i, card in enumerate(cards.split(";"), start=1):
            card = card.strip()
            why = check_bhyt(card)
            if why:
                target = err if sev.get("bhyt_format", "error") == "error" else warn
                target.append(
                    RecordError(
                        loc + "MA_THE_BHYT" + (f"[{i}]" if ";" in cards else ""),
                        f"invalid BHYT card {card!r}: {why}",
                        key,
                        "error" if target is err else "warning",
                    )
                )
    vao, ra = row.get("NGAY_VAO"), row.get("NGAY_RA")
    if vao and ra and len(vao) == 12 and len(ra) == 12 and vao.isdigit() and ra.isdigit() and ra < vao:
        err.append(RecordError(loc + "NGAY_RA", f"NGAY_RA {ra} is before NGAY_VAO {vao}", key))
    for f in ("MA_NOI_DI", "MA_NOI_DEN", "MA_CSKCB"):
        v = row.get(f)
        if v and len(v) != 5:
            err.append(RecordError(loc + f, f"facility code {v!r} must be 5 characters", key))
