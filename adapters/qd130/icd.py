"""ICD-10 codes of a HOSO: checked against the shipped list (or the code form), per the vendor's policy.

An unknown or malformed code is never stored under the ICD-10 system: the mapper keeps it, as written,
in a local "unverified code" system beside the text. Whether it is a per-record warning (default) or an
error that rejects the record is the vendor profile's `icd10_unknown` (warning | error). The list is the
one at `Settings.icd10_path` (LIENTHONG_ICD10_PATH), passed in by the plug-in; None = shipped list or none.
"""

from __future__ import annotations

from adapters.base import RecordError
from adapters.i18n import msg
from mappings.terminology import icd10, icd10_list_available, icd10_valid, normalize_icd10

from .vendors import VendorProfile

# Fields holding ICD-10 codes (';'-lists), per table.
ICD10_FIELDS = {
    "XML1": ("MA_BENH_CHINH", "MA_BENH_KT"),
    "XML3": ("MA_BENH",),
    "XML13": ("MA_BENH_CHINH", "MA_BENH_KT"),
    "XML14": ("MA_BENH_CHINH", "MA_BENH_KT"),
}


def codes(value: str | None) -> list[str]:
    """The codes of a ';'-list field, stripped, empty items dropped."""
    return [c.strip() for c in (value or "").split(";") if c.strip()]


def valid(code: str, path: str | None = None) -> bool:
    """True when the code may be stored under the ICD-10 system (in the list, or well-formed without one)."""
    return icd10_valid(code, path)


def canonical(code: str) -> str:
    """The dotted upper-case form ('j189' -> 'J18.9'); the code as written when malformed."""
    return normalize_icd10(code) or code


def display(code: str, path: str | None = None) -> str | None:
    """The Vietnamese (else English) name of a code when an ICD-10 list is loaded."""
    entry = icd10(code, path)
    if entry is None:
        return None
    return entry.name_vi or entry.name_en or None


def check(
    tables: dict[str, list[dict]], vendor: VendorProfile, key: str | None, path: str | None = None
) -> list[RecordError]:
    """One problem per unknown/malformed ICD-10 code, with the severity the vendor profile asks for."""
    severity = "error" if vendor.icd10_unknown == "error" else "warning"
    checked = (
        msg("the ICD-10 list")
        if icd10_list_available(path)
        else msg("the ICD-10 code form (no code list loaded)")
    )
    out = []
    for loai, fields in ICD10_FIELDS.items():
        for pos, row in enumerate(tables.get(loai) or [], start=1):
            for name in fields:
                for code in codes(row.get(name)):
                    if valid(code, path):
                        continue
                    where = f"{loai}[{pos}]/{name}" if loai in ("XML3",) else f"{loai}/{name}"
                    out.append(
                        RecordError.of(
                            msg(
                                "ICD-10 code {code!r} fails {checked}; kept as an unverified local code",
                                code=code,
                                checked=checked,
                            ),
                            where,
                            key,
                            severity,
                            table=loai,
                            stt=row.get("STT"),
                            field=name,
                        )
                    )
    return out


def coding(code: str, icd10_system: str, unverified_system: str, path: str | None = None) -> dict:
    """Coding for a diagnosis code: ICD-10 (dotted, with the list's name) when valid, else unverified."""
    if not valid(code, path):
        return {"system": unverified_system, "code": code}
    out = {"system": icd10_system, "code": canonical(code)}
    name = display(code, path)
    if name:
        out["display"] = name
    return out
