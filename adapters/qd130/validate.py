"""Per-record checks of a decoded HOSO: formats, mandatory fields, identifiers, cross-table keys."""

from __future__ import annotations

import re

from adapters.base import RecordError
from adapters.i18n import msg
from fhir_server.i18n import Msg
from mappings import load_yaml

from . import icd
from .envelope import HosoData, tables_config
from .values import FORMATTERS, BadValue, to_birth
from .vendors import VendorProfile

_BHYT_LEGACY = re.compile(r"^[A-Z]{2}[1-5]\d{12}$")
_PASSPORT = re.compile(r"^[A-Z]\d{7}$")


def _codes() -> dict:
    return load_yaml("qd130/codes.yaml")


def check_cccd(value: str, birth_year: int | None = None, gender: str | None = None) -> Msg | None:
    """Why an SO_CCCD value is invalid, or None. 12-digit CCCD structure, 9-digit CMND, passport."""
    if _PASSPORT.match(value):
        return None
    if not value.isdigit():
        return msg("must be 12 digits (CCCD), 9 digits (CMND) or a passport number (1 letter + 7 digits)")
    if len(value) == 9:
        return None
    if len(value) != 12:
        return msg("has {count} digits; a CCCD has 12", count=len(value))
    codes = _codes()
    if value[:3] not in codes["cccd_province_codes"]:
        return msg("digits 1-3 {code!r} are not a province code", code=value[:3])
    century, sex = codes["cccd_century_sex"][value[3]]
    year = century + int(value[4:6])
    if birth_year is not None and year != birth_year:
        return msg(
            "digits 4-6 encode birth year {year}, but NGAY_SINH says {birth}", year=year, birth=birth_year
        )
    if gender in ("male", "female") and sex != gender:
        return msg(
            "digit 4 encodes sex {sex}, but GIOI_TINH says {gender}", sex=_SEX[sex], gender=_SEX[gender]
        )
    return None


def check_bhyt(value: str) -> Msg | None:
    """Why one MA_THE_BHYT value is invalid, or None (15-char legacy, 10-digit BHXH, 12-digit CCCD)."""
    if value.isdigit() and len(value) in (10, 12):
        return None
    if len(value) == 15 and _BHYT_LEGACY.match(value):
        return None
    return msg(
        "must be 15 chars (2 letters + benefit digit 1-5 + 2-digit province + 10 digits), "
        "10 digits (BHXH number) or 12 digits (CCCD)"
    )


def _row_loc(loai: str, pos: int, n: int, record: str, fieldname: str) -> str:
    """Location string like XML2/CHI_TIET_THUOC[3]/DON_GIA (index only for list tables)."""
    if record.startswith("CHI_TIEU") or record == "TONG_HOP":
        return f"{loai}/{record}/{fieldname}"
    return f"{loai}/{record}[{pos}]/{fieldname}"


class _Sink:
    """Where one HOSO's problems go, each naming MA_LK, table, the row's STT and the field."""

    def __init__(self, data: HosoData) -> None:
        self.key = data.ma_lk
        self.err, self.warn = data.errors, data.warnings

    def add(
        self, message: Msg, loai: str, location: str, row: dict | None, fld: str | None, warning: bool = False
    ) -> None:
        """Record one error (or warning) at table/row/field."""
        stt = (row or {}).get("STT")
        (self.warn if warning else self.err).append(
            RecordError.of(
                message,
                location,
                self.key,
                "warning" if warning else "error",
                table=loai,
                stt=stt,
                field=fld,
            )
        )


def validate(data: HosoData, vendor: VendorProfile, icd10_path: str | None = None) -> None:
    """Append errors and warnings to data; never raises. `icd10_path` is Settings.icd10_path."""
    cfg = tables_config()
    tables = cfg["tables"]
    sev = cfg.get("severity", {})
    key = data.ma_lk
    sink = _Sink(data)

    xml1 = data.tables.get("XML1")
    if not xml1:
        sink.add(msg("XML1 (TONG_HOP) is missing; every HOSO needs one"), "XML1", "XML1", None, None)
        return
    for problem in icd.check(data.tables, vendor, key, icd10_path):
        (data.errors if problem.severity == "error" else data.warnings).append(problem)
    if len(xml1) > 1:
        sink.add(
            msg("{count} TONG_HOP records in one HOSO; expected 1", count=len(xml1)),
            "XML1",
            "XML1",
            None,
            None,
        )
    row1 = xml1[0]

    for loai, rows in data.tables.items():
        record = tables[loai]["record"]
        fmts = cfg["formats"].get(loai, {})
        req_e = cfg["required_errors"].get(loai, ())
        req_w = cfg["required_warnings"].get(loai, ())
        n = len(rows)
        for pos, row in enumerate(rows, start=1):
            _check_storable(row, loai, pos, n, record, sink)
            for f in req_e:
                if f not in row:
                    sink.add(_MISSING, loai, _row_loc(loai, pos, n, record, f), row, f)
            for f in req_w:
                if f not in row:
                    sink.add(_MISSING, loai, _row_loc(loai, pos, n, record, f), row, f, warning=True)
            for f, kind in fmts.items():
                v = row.get(f)
                if v is None:
                    continue
                try:
                    if kind == "birth":
                        to_birth(v)
                    else:
                        FORMATTERS[kind](v, vendor)
                except ValueError as exc:
                    why = (
                        exc.message
                        if isinstance(exc, BadValue)
                        else msg("{value!r} is not a number", value=v)
                    )
                    sink.add(why, loai, _row_loc(loai, pos, n, record, f), row, f)
            if loai != "XML1" and key and "MA_LK" in row and row["MA_LK"] != key:
                sink.add(
                    msg("MA_LK {value!r} differs from XML1 MA_LK {key!r}", value=row["MA_LK"], key=key),
                    loai,
                    _row_loc(loai, pos, n, record, "MA_LK"),
                    row,
                    "MA_LK",
                )

    _check_xml1(row1, sev, sink)


_MISSING = msg("mandatory field is empty or missing")

# A poison value must be refused here, naming its field, not by the database for the whole group:
# NUL cannot be stored in PostgreSQL text, other C0 controls are never legitimate in QĐ130 data, and a
# code or identifier (MA_*, SO_*) becomes an indexed token, whose index entry PostgreSQL caps at about
# 2.7 KB. 1,024 characters is the largest size QĐ130 states for such a field (XML3 MA_MAY).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CODE_MAX = 1024


def _check_storable(row: dict, loai: str, pos: int, n: int, record: str, sink: _Sink) -> None:
    """Errors for values the store must never see: control characters anywhere, over-long codes."""
    for f, v in row.items():
        if not isinstance(v, str):
            continue
        bad = _CONTROL.search(v)
        if bad:
            why = msg(
                "contains the control character U+{code}; it cannot be stored", code=f"{ord(bad.group()):04X}"
            )
            sink.add(why, loai, _row_loc(loai, pos, n, record, f), row, f)
        elif len(v) > CODE_MAX and f.startswith(("MA_", "SO_")):
            why = msg(
                "is {count} characters long; a code or identifier holds at most {max}",
                count=len(v),
                max=CODE_MAX,
            )
            sink.add(why, loai, _row_loc(loai, pos, n, record, f), row, f)


_SEX = {"male": msg("male"), "female": msg("female")}


def _check_xml1(row: dict, sev: dict, sink: _Sink) -> None:
    """Identity and chronology checks on TONG_HOP."""
    loc = "XML1/TONG_HOP/"
    gender_map = _codes()["maps"]["gioi_tinh"]["codes"]
    g = row.get("GIOI_TINH")
    gender = None
    if g is not None:
        if g in gender_map:
            gender = gender_map[g]["target"]
        else:
            why = msg("{value!r} is not 1, 2 or 3; gender set to unknown", value=g)
            sink.add(why, "XML1", loc + "GIOI_TINH", row, "GIOI_TINH", warning=True)
    birth_year = None
    b = row.get("NGAY_SINH")
    if b and b[:4].isdigit():
        birth_year = int(b[:4])
    cccd = row.get("SO_CCCD")
    if cccd:
        why_cccd = check_cccd(cccd, birth_year, gender)
        if why_cccd:
            warning = sev.get("cccd_format", "error") != "error"
            sink.add(
                msg("invalid CCCD: {why}", why=why_cccd), "XML1", loc + "SO_CCCD", row, "SO_CCCD", warning
            )
    cards = row.get("MA_THE_BHYT")
    if cards:
        for i, card in enumerate(cards.split(";"), start=1):
            card = card.strip()
            why_card = check_bhyt(card)
            if why_card:
                warning = sev.get("bhyt_format", "error") != "error"
                sink.add(
                    msg("invalid BHYT card {card!r}: {why}", card=card, why=why_card),
                    "XML1",
                    loc + "MA_THE_BHYT" + (f"[{i}]" if ";" in cards else ""),
                    row,
                    "MA_THE_BHYT",
                    warning,
                )
    vao, ra = row.get("NGAY_VAO"), row.get("NGAY_RA")
    if vao and ra and len(vao) == 12 and len(ra) == 12 and vao.isdigit() and ra.isdigit() and ra < vao:
        sink.add(
            msg("NGAY_RA {ra} is before NGAY_VAO {vao}", ra=ra, vao=vao),
            "XML1",
            loc + "NGAY_RA",
            row,
            "NGAY_RA",
        )
    for f in ("MA_NOI_DI", "MA_NOI_DEN", "MA_CSKCB"):
        v = row.get(f)
        if v and len(v) != 5:
            sink.add(msg("facility code {value!r} must be 5 characters", value=v), "XML1", loc + f, row, f)
