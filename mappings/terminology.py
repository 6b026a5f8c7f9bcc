"""Terminology lookups over mappings/terminology/: Vietnamese lab names -> LOINC, unit spellings -> UCUM, ICD-10.

Loaded lazily on first use and cached; the data files are read-only at run time. Sources and licences of the
data are in mappings/terminology/README.md.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mappings import MAPPINGS_DIR, load_yaml

DATA_DIR = MAPPINGS_DIR / "terminology"

# Words that hospitals put around an analyte name in TEN_CHI_SO / TEN_DICH_VU ("Định lượng Glucose [Máu]",
# "Đo hoạt độ AST (GOT) [Máu]"); stripped only when the bare name is not itself known.
_NAME_PREFIXES = ("dinhluong", "dohoatdo", "xetnghiem", "xn")
_NAME_SUFFIXES = ("mau", "huyetthanh", "huyettuong")
_ICD10_RE = re.compile(r"^([A-Z][0-9]{2})(?:\.?([0-9A-Z]{1,2}))?$")


@dataclass(frozen=True)
class LabTest:
    """One row of lab-loinc.csv: a Vietnamese lab test and its LOINC code."""

    group: str
    vietnamese_name: str
    aliases: tuple[str, ...]
    loinc_code: str
    loinc_long_name: str
    loinc_property: str
    loinc_system: str
    ucum_unit: str
    specimen: str
    ma_dich_vu: str
    verified_against: str
    source: str


@dataclass(frozen=True)
class Icd10Entry:
    """One ICD-10 code of the loaded list, with its Vietnamese and English names when the list has them."""

    code: str
    code_nodot: str
    name_vi: str
    name_en: str


def fold(text: str) -> str:
    """Accent-, case- and punctuation-insensitive key ('AST (GOT)' -> 'astgot', 'Đường máu' -> 'duongmau').

    '%' and '#' are kept because they are what tells NEU% (a fraction) from NEU# (a count)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9%#]", "", bare)


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV data file, skipping the '#' comment lines that carry its provenance header."""
    with open(path, encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines))


@lru_cache(maxsize=None)
def lab_tests() -> tuple[LabTest, ...]:
    """Every row of lab-loinc.csv, in file order (the order is the tie-break priority)."""
    rows = _read_csv(DATA_DIR / "lab-loinc.csv")
    return tuple(
        LabTest(
            group=r["group"],
            vietnamese_name=r["vietnamese_name"],
            aliases=tuple(a for a in r["aliases"].split("|") if a),
            loinc_code=r["loinc_code"],
            loinc_long_name=r["loinc_long_name"],
            loinc_property=r["loinc_property"],
            loinc_system=r["loinc_system"],
            ucum_unit=r["ucum_unit"],
            specimen=r["specimen"],
            ma_dich_vu=r["ma_dich_vu"],
            verified_against=r["verified_against"],
            source=r["source"],
        )
        for r in rows
    )


@lru_cache(maxsize=None)
def _lab_index() -> dict[str, tuple[LabTest, ...]]:
    """Folded name/alias/LOINC code -> rows carrying it, in file order."""
    index: dict[str, list[LabTest]] = {}
    for test in lab_tests():
        for key in {fold(k) for k in (test.vietnamese_name, test.loinc_code, *test.aliases)}:
            if key:
                index.setdefault(key, []).append(test)
    return {k: tuple(v) for k, v in index.items()}


def _candidates(text: str | None) -> tuple[LabTest, ...]:
    """Rows whose name or alias matches text, trying it bare of 'Định lượng … [Máu]' wrappers if needed."""
    if not text:
        return ()
    index = _lab_index()
    key = fold(text)
    if key in index:
        return index[key]
    for prefix in _NAME_PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :] in index:
            return index[key[len(prefix) :]]
    stripped = next((key[len(p) :] for p in _NAME_PREFIXES if key.startswith(p)), key)
    for suffix in _NAME_SUFFIXES:
        if stripped.endswith(suffix) and stripped[: -len(suffix)] in index:
            return index[stripped[: -len(suffix)]]
    return ()


def lab_loinc(
    local_code: str | None = None,
    name: str | None = None,
    *,
    unit: str | None = None,
    specimen: str | None = None,
) -> LabTest | None:
    """The LOINC row for a hospital's analyte code (MA_CHI_SO) or name (TEN_CHI_SO), or None when unknown.

    Accent- and case-insensitive and alias-aware. When several rows share a name ('GLU' in blood and in urine,
    'Creatinin' in µmol/L and mg/dL, 'PCT' for procalcitonin and plateletcrit) the reported unit and the
    specimen key ('urine', 'blood', 'ser_plas', …) choose among them; otherwise the first row in the file wins."""
    found = _candidates(local_code) or _candidates(name)
    if not found:
        return None
    if specimen:
        same_specimen = [t for t in found if t.specimen == specimen]
        found = tuple(same_specimen) or found
    if unit:
        coded = ucum(unit)
        if coded:
            same_unit = [t for t in found if t.ucum_unit == coded[0]]
            found = tuple(same_unit) or found
    return found[0]


@lru_cache(maxsize=None)
def _unit_tables() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]], frozenset[str]]:
    """(exact spelling -> unit, folded spelling -> unit, spellings that are not units) from units.yaml."""
    data = load_yaml("terminology/units.yaml")
    exact: dict[str, tuple[str, str]] = {}
    folded: dict[str, tuple[str, str]] = {}
    for code, spec in data["units"].items():
        unit = (str(code), str(spec.get("display") or code))
        for text in spec["text"]:
            exact[str(text)] = unit
            if not spec.get("case_sensitive"):
                folded[_fold_unit(str(text))] = unit
    return exact, folded, frozenset(str(t) for t in data.get("none", []))


def _fold_unit(text: str) -> str:
    """Unit key that ignores case, spacing and the micro sign spelling (µ, μ, u)."""
    text = unicodedata.normalize("NFKC", text).replace("µ", "u").replace("μ", "u")
    return re.sub(r"\s+", "", text).lower()


def ucum(unit_text: str | None) -> tuple[str, str] | None:
    """(UCUM code, display) for a unit as written in an export ('mmol/l', 'G/L', 'lần/phút'), or None.

    None means not a unit of measure ('cái', 'lần') or a spelling nobody has mapped yet."""
    if not unit_text or not unit_text.strip():
        return None
    text = unit_text.strip()
    exact, folded, not_units = _unit_tables()
    if text in exact:
        return exact[text]
    if text in not_units:
        return None
    return folded.get(_fold_unit(text))


def normalize_icd10(code: str | None) -> str | None:
    """Dotted upper-case form of an ICD-10 code ('j189' -> 'J18.9', 'I10' -> 'I10'), or None if malformed.

    Dagger/asterisk marks (A17.0†, G01*) and spaces are dropped; 5-character Vietnamese codes (B18.00) kept."""
    if not code:
        return None
    text = re.sub(r"[\s†*+]", "", code).upper()
    m = _ICD10_RE.match(text)
    if not m:
        return None
    return f"{m.group(1)}.{m.group(2)}" if m.group(2) else m.group(1)


def icd10_list_path(configured: str | Path | None = None) -> Path | None:
    """Where the ICD-10 list is read from: the configured path (Settings.icd10_path), else a shipped list.

    The path is passed in by the caller (adapters pass `settings.icd10_path`): this data package never
    reads the environment itself."""
    if configured:
        return Path(configured)
    return _shipped_icd10()


@lru_cache(maxsize=None)
def _shipped_icd10() -> Path | None:
    """A list shipped in mappings/terminology/, if any (checked once)."""
    for name in ("icd10-vn.csv.gz", "icd10-vn.csv"):
        if (DATA_DIR / name).exists():
            return DATA_DIR / name
    return None


# Column names accepted for the ICD-10 list: this project's layout, and the Ministry's spreadsheet layout
# (MÃ BỆNH / MÃ BỆNH KHÔNG DẤU / DISEASE NAME / TÊN BỆNH, as exported from icd.kcb.vn or the TT 06/2026 annex).
_ICD10_COLUMNS = {
    "code": ("code", "ma_benh", "mabenh"),
    "name_vi": ("name_vi", "ten_benh", "tenbenh"),
    "name_en": ("name_en", "disease_name", "diseasename", "diseasenamewho2019english"),
}


def _icd10_table(configured: str | Path | None = None) -> dict[str, Icd10Entry] | None:
    """Dotted code -> entry from the configured (else shipped) list, or None when no list is available."""
    return _load_icd10(icd10_list_path(configured))


@lru_cache(maxsize=8)
def _load_icd10(path: Path | None) -> dict[str, Icd10Entry] | None:
    """The list at `path` read once per path (None, or a missing file, means no list)."""
    if path is None or not path.exists():
        return None
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    for at, header in enumerate(rows):
        keys = [fold(cell).replace("_", "") for cell in header]
        cols = {}
        for field, names in _ICD10_COLUMNS.items():
            wanted = [n.replace("_", "") for n in names]
            cols[field] = next((keys.index(n) for n in wanted if n in keys), None)
        if cols["code"] is not None:
            break
    else:
        raise ValueError(f"{path}: no ICD-10 code column (code / MÃ BỆNH)")
    table: dict[str, Icd10Entry] = {}
    for row in rows[at + 1 :]:
        if len(row) <= cols["code"] or row[0].startswith("#"):
            continue
        code = normalize_icd10(row[cols["code"]])
        if code is None:
            continue
        table[code] = Icd10Entry(
            code, code.replace(".", ""), _cell(row, cols["name_vi"]), _cell(row, cols["name_en"])
        )
    return table


def _cell(row: list[str], at: int | None) -> str:
    """Stripped cell at a column position, or '' when the column is absent or the row is short."""
    return row[at].strip() if at is not None and len(row) > at else ""


def icd10_list_available(path: str | Path | None = None) -> bool:
    """True when an ICD-10 code list is loaded, so icd10_valid() checks membership and not only the form."""
    return _icd10_table(path) is not None


def icd10(code: str | None, path: str | Path | None = None) -> Icd10Entry | None:
    """The list entry for an ICD-10 code written any usual way ('J18.9', 'J189', 'j18.9'), or None."""
    table = _icd10_table(path)
    norm = normalize_icd10(code)
    if table is None or norm is None:
        return None
    return table.get(norm)


def icd10_valid(code: str | None, path: str | Path | None = None) -> bool:
    """Whether a code may be stored under the ICD-10 system: in the list when one is loaded, else well-formed.

    'ZZZ.99' is never valid; with a list loaded, a well-formed code missing from it ('J99.9') is not valid either.
    `path` is the configured list (Settings.icd10_path); None means the shipped list, if any."""
    norm = normalize_icd10(code)
    if norm is None:
        return False
    table = _icd10_table(path)
    return True if table is None else norm in table


def loinc_check_digit_ok(code: str) -> bool:
    """Whether a LOINC code's last digit is its mod-10 check digit (LOINC's Luhn-style rule, e.g. 2345-7)."""
    m = re.fullmatch(r"([0-9]{1,7})-([0-9])", code or "")
    if not m:
        return False
    total = 0
    for position, ch in enumerate(reversed(m.group(1))):
        digit = int(ch) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(m.group(2))
