"""The QĐ130 field-coverage table, measured on the mapping itself.

For every field of every table in mappings/qd130/fields.yaml: a fully filled record is mapped, then
mapped again without that field; the FHIR elements that change are what the field becomes. A field
that changes nothing needs a reason in mappings/qd130/coverage.yaml. `python -m adapters.qd130.coverage`
prints docs/qd130-coverage.md; tests/adapters/qd130/test_coverage.py keeps the two in step.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

from adapters.field_coverage import changed
from mappings import load_yaml

from .envelope import HosoData, tables_config
from .plugin import Qd130Adapter, build_bundle
from .vendors import get_vendor

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # a clone with shared/ beside the repository
    SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "standards" / "samples"

# Values for fields the samples leave empty, by format (tables.yaml) or by field name; chosen to be valid.
_BY_FORMAT = {
    "datetime12": "202403151000",
    "date8": "20240315",
    "date_or_datetime": "20240315",
    "number": "7",
}
_BY_NAME = {
    "MA_DINH_CHI_THAI": "1",
    "MA_LY_DO_VNT": "1",
    "MA_TAI_NAN": "1",
    "MA_KHUVUC": "K1",
    "NHOM_MAU": "O+",
    "MA_BENH_YHCT": "U50.001",
    "MA_BENH_KT": "I10",
    "MA_BENH": "J18.9",
    "MA_PTTT_QT": "47.01",
    "PP_VO_CAM": "1",
    "MA_NOI_DI": "01001",
    "GIAY_CHUYEN_TUYEN": "123/GCT",
    "NGAY_TAI_KHAM": "20240401",
    "THOIGIAN_DINHCHI": "202403151000",
    "TUOI_THAI": "10",
    "SO_NGAY_NGHI": "5",
    "MA_GIUONG": "H012",
    "GOI_VTYT": "G1",
    "T_TRANTT": "1000000",
    # XML6 / XML9 / XML12 / XML15
    "KQ_XNTL_VR": "150",
    "GIOI_TINH_CON": "2",
    "NGAY_SINH_CON": "202403150830",
    "NGAYSINH_NND": "19900315",
    "SO_CON": "1",
    "LAN_SINH": "2",
    "SO_CON_SONG": "2",
    "SINHCON_PHAUTHUAT": "0",
    "SINHCON_DUOI32TUAN": "0",
    "CAN_NANG_CON": "3200",
    "SO_CCCD_NND": "079190012345",
    "PHANLOAI_LAO_VITRI": "1",
    "PHANLOAI_LAO_TS": "1",
    "PHANLOAI_LAO_HIV": "1",
    "PHANLOAI_LAO_VK": "1",
    "PHANLOAI_LAO_KT": "3",
    "LOAI_DTRI_LAO": "2",
    "GIAI_DOAN_LAM_SANG": "1",
}


_SUPPLY_ONLY = ("MA_VAT_TU", "TEN_VAT_TU", "GOI_VTYT", "MA_HIEU_SP", "TAI_SU_DUNG", "T_TRANTT")
_SERVICE_ONLY = ("MA_DICH_VU", "TEN_DICH_VU", "MA_PTTT_QT", "PP_VO_CAM", "NGUOI_THUC_HIEN")


@dataclass
class Row:
    """One line of the table: a field and what it becomes (or why it does not)."""

    table: str
    field: str
    becomes: list[str]
    reason: str | None


def full_record() -> HosoData:
    """Both samples merged (inpatient tables, outpatient results), XML8/XML11 added, every field filled."""
    ad = Qd130Adapter()
    inpatient = ad.parse((SAMPLES / "qd130-inpatient-referral.xml").read_bytes()).records[0].data
    outpatient = ad.parse((SAMPLES / "qd130-outpatient.xml").read_bytes()).records[0].data
    data = copy.deepcopy(inpatient)
    data.tables["XML4"] = copy.deepcopy(outpatient.tables["XML4"])
    # The outpatient lab order the results point at (MA_NHOM 1 → ServiceRequest).
    data.tables["XML3"] += [
        dict(r, STT=f"L{r['STT']}") for r in outpatient.tables["XML3"] if r.get("MA_NHOM") == "1"
    ]
    data.tables["XML7"][0]["MA_DINH_CHI_THAI"] = "1"  # so the termination fields have a section to go to
    # A surgery row so the Procedure fields (MA_PTTT_QT, PP_VO_CAM…) have somewhere to go.
    surgery = dict(
        data.tables["XML3"][0], STT="9", MA_NHOM="8", MA_DICH_VU="10.0001", TEN_DICH_VU="Phẫu thuật"
    )
    data.tables["XML3"].append(surgery)
    # Tables the samples do not carry: one row each, filled below.
    for loai in ("XML6", "XML8", "XML9", "XML10", "XML11", "XML12", "XML15"):
        data.tables[loai] = [{"MA_LK": data.ma_lk}]
    for loai in ("XML10", "XML11", "XML12"):  # papers attached as their original XML
        data.raw.setdefault(loai, [f"<{tables_config()['tables'][loai]['root']}/>".encode()])
    fields = load_yaml("qd130/fields.yaml")["tables"]
    formats = tables_config().get("formats", {})
    for loai, rows in data.tables.items():
        for row in rows:
            supply = bool(row.get("MA_VAT_TU"))
            for name in fields.get(loai, {}):
                if loai == "XML3" and name in (_SERVICE_ONLY if supply else _SUPPLY_ONLY):
                    continue  # one XML3 row is a service or a supply, never both
                if not row.get(name):
                    fmt = formats.get(loai, {}).get(name)
                    row[name] = _BY_NAME.get(name) or _BY_FORMAT.get(fmt or "", f"{loai}-{name}")
    return data


def _bundle(data: HosoData) -> dict[tuple[str, str], dict]:
    """Resources by (type, id), Provenance left out (it only lists the others)."""
    row1 = data.tables["XML1"][0]
    facility = row1.get("MA_CSKCB") or "00000"  # no envelope fallback: measure the field itself
    bundle = build_bundle(data, facility, get_vendor(None), "hl7vn", [], data.ma_lk or "")
    return {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] != "Provenance"
    }


def rows() -> list[Row]:
    """Every field of every table with what it becomes, measured by removing it."""
    reasons = load_yaml("qd130/coverage.yaml")
    fields = load_yaml("qd130/fields.yaml")["tables"]
    mapped_tables = {k for k, v in tables_config()["tables"].items() if v["mapped"]}
    data = full_record()
    base = _bundle(data)
    out = []
    for loai, names in fields.items():
        for name in names:
            reason = (reasons["fields"].get(loai) or {}).get(name) or reasons["fields"]["*"].get(name)
            if loai not in mapped_tables:
                out.append(Row(loai, name, [], reasons["tables"][loai]))
                continue
            ablated = copy.deepcopy(data)
            for row in ablated.tables.get(loai, []):
                row.pop(name, None)
            try:
                becomes = changed(base, _bundle(ablated))
            except KeyError:
                # The mapper cannot build the Bundle without it: a key field (ids, Patient, Encounter).
                becomes = ["required: identifies the record (resource ids)"]
            out.append(Row(loai, name, becomes, reason))
    return out


def _kinds(unmapped: list[Row]) -> dict[str, int]:
    """Unmapped fields counted by kind of reason (read from the reason text, see coverage.yaml)."""
    out = {"copies of a field mapped elsewhere (= …)": 0, "keys and row numbers": 0, "reserved": 0}
    out["other (kept in the archived record; reason per field)"] = 0
    for r in unmapped:
        reason = r.reason or ""
        if (
            reason.startswith("=")
            or reason.startswith("with XML6")
            or reason.startswith("mapped to a proposed")
        ):
            out["copies of a field mapped elsewhere (= …)"] += 1
        elif r.field in ("MA_LK", "STT"):
            out["keys and row numbers"] += 1
        elif r.field == "DU_PHONG":
            out["reserved"] += 1
        else:
            out["other (kept in the archived record; reason per field)"] += 1
    return out


def render(table: list[Row]) -> str:
    """docs/qd130-coverage.md."""
    mapped = [r for r in table if r.becomes]
    unmapped = [r for r in table if not r.becomes]
    lines = [
        "# QĐ 130/4750 field coverage",
        "",
        "Generated by `python -m adapters.qd130.coverage > docs/qd130-coverage.md` from the mapping itself:",
        "a record with every field filled is mapped, then mapped again without each field; **becomes** lists",
        "the FHIR elements that changed. Reasons for fields that change nothing are data in",
        "`mappings/qd130/coverage.yaml`. `tests/adapters/qd130/test_coverage.py` fails when this file, the",
        "mapping or the reasons disagree. HL7 v2 coverage: `docs/hl7v2-coverage.md`.",
        "",
        f"**Totals: {len(table)} fields — {len(mapped)} mapped, {len(unmapped)} not mapped (each with a reason).**",
        "",
        "Not mapped, by kind of reason: "
        + ", ".join(f"{n} {kind}" for kind, n in _kinds(unmapped).items())
        + ".",
        "",
        "| table | fields | mapped | not mapped |",
        "|---|---|---|---|",
    ]
    for loai in dict.fromkeys(r.table for r in table):
        these = [r for r in table if r.table == loai]
        n = sum(1 for r in these if r.becomes)
        lines.append(f"| {loai} | {len(these)} | {n} | {len(these) - n} |")
    lines += ["", "| table | field | becomes | not mapped because |", "|---|---|---|---|"]
    for r in table:
        becomes = ", ".join(f"`{p}`" for p in r.becomes)
        why = "" if r.becomes else (r.reason or "**no reason recorded**")
        lines.append(f"| {r.table} | `{r.field}` | {becomes} | {why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(rows()))
