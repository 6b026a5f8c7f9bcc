"""Vietnam's administrative units before and after the 1 Jul 2025 reform, and the crosswalk between them.

Data: mappings/admin_units/*.csv (sources, dates and licence in its README.md). Tables load lazily, once.
"Old" = 63 provinces / districts / communes valid until 2025-06-30; "new" = 34 provinces and their
communes from 2025-07-01. Old -> new is many-to-many at commune level (split communes), so a commune
maps to a new one only when the crosswalk lists exactly one; otherwise the candidates are returned.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

DATA_DIR = Path(__file__).parent / "admin_units"
REFORM_DATE = dt.date(2025, 7, 1)
Era = Literal["old", "new"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Province:
    """A province-level unit of one era."""

    code: str
    name: str
    type: str
    era: Era
    aliases: tuple[str, ...] = ()

    @property
    def short_name(self) -> str:
        """The name without its 'Tỉnh' / 'Thành phố' prefix."""
        return strip_prefix(self.name)


@dataclass(frozen=True, slots=True)
class District:
    """A district-level unit (old era only: the level was abolished on 2025-07-01)."""

    code: str
    name: str
    type: str
    province_code: str

    @property
    def short_name(self) -> str:
        """The name without its 'Quận' / 'Huyện' / 'Thị xã' / 'Thành phố' prefix."""
        return strip_prefix(self.name)


@dataclass(frozen=True, slots=True)
class Ward:
    """A commune-level unit (xã, phường, thị trấn, đặc khu) of one era; district_code is old era only."""

    code: str
    name: str
    type: str
    province_code: str
    era: Era
    district_code: str | None = None
    alt_name: str = ""
    source: str = ""

    @property
    def short_name(self) -> str:
        """The name without its 'Phường' / 'Xã' / 'Thị trấn' / 'Đặc khu' prefix."""
        return strip_prefix(self.name)


@dataclass(frozen=True, slots=True)
class WardLink:
    """One crosswalk pair: an old commune (or ward-less island district) and one new commune it went into."""

    old_ward_code: str | None
    old_district_code: str
    old_province_code: str
    new_ward_code: str
    new_province_code: str
    extent: str  # "full" | "partial" | "" (unknown)
    default: bool  # vietnamadminunits' pick for a split commune
    sources: str  # "both" | "vietnamadminunits" | "dvhcvn"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the codes given to resolve_address, in Vietnamese and English."""

    code: str
    vi: str
    en: str


@dataclass(frozen=True, slots=True)
class AddressResolution:
    """An address in both eras: old units as given, new province always (when any unit is known)."""

    old_province: Province | None = None
    old_district: District | None = None
    old_ward: Ward | None = None
    new_province: Province | None = None
    new_ward: Ward | None = None
    # several when the old commune was split; new_ward is then None. Most likely first.
    new_ward_candidates: tuple[Ward, ...] = ()
    problems: tuple[Problem, ...] = field(default=())


# --- text --------------------------------------------------------------------------------------

_PREFIXES = sorted(
    [
        "thanh pho truc thuoc trung uong",
        "thanh pho",
        "thu do",
        "tp",
        "tinh",
        "quan",
        "huyen",
        "thi xa",
        "tx",
        "thi tran",
        "tt",
        "phuong",
        "xa",
        "dac khu",
        "q",
        "h",
        "p",
    ],
    key=len,
    reverse=True,
)
_PREFIX_RE = re.compile(r"^(?:" + "|".join(re.escape(p) for p in _PREFIXES) + r")\s+(?=\S)")
_PREFIX_RAW_RE = re.compile(
    r"^(?:Thành phố|Thủ đô|Tỉnh|Quận|Huyện|Thị xã|Thị trấn|Phường|Xã|Đặc khu)\s+", re.IGNORECASE
)


_D_MAP = str.maketrans({"đ": "d", "Đ": "D", "Ð": "D", "ð": "d"})


def fold(text: str) -> str:
    """Lower-case, accent-free, 'đ' -> 'd', punctuation -> space, single spaces."""
    # Ð (U+00D0) looks like Đ and turns up in typed data
    decomposed = unicodedata.normalize("NFD", text.translate(_D_MAP))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", bare).split())


def strip_prefix(name: str) -> str:
    """The official name without its unit-type prefix ('Phường Bến Nghé' -> 'Bến Nghé')."""
    return _PREFIX_RAW_RE.sub("", name.strip(), count=1) or name


def name_key(name: str) -> str:
    """Matching key: folded, unit-type prefix dropped, numbers without leading zeros, no spaces.

    'TP. Hồ Chí Minh', 'Thành phố Hồ Chí Minh' and 'ho chi minh' share a key; so do 'Phường 01' and 'P.1'.
    """
    folded = _PREFIX_RE.sub("", fold(name), count=1)
    return "".join(str(int(tok)) if tok.isdigit() else tok for tok in folded.split())


def normalize_code(value: str | int | None, width: int) -> str | None:
    """'79', '079', 79 -> '79' (width 2); '4' -> '00004' (width 5); blank or non-numeric -> None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        return None
    number = int(text)
    return str(number).zfill(width) if len(str(number)) <= width else None


# --- loading -----------------------------------------------------------------------------------


def _rows(name: str) -> Iterator[dict[str, str]]:
    """Rows of one CSV under mappings/admin_units/, skipping its '#' header comments."""
    with open(DATA_DIR / name, encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(line for line in fh if not line.startswith("#"))


def _tuples(name: str, columns: tuple[str, ...]) -> Iterator[list[str]]:
    """The given columns of one CSV as lists, in that order (plain csv.reader: the big files load 2x faster)."""
    with open(DATA_DIR / name, encoding="utf-8", newline="") as fh:
        reader = csv.reader(line for line in fh if not line.startswith("#"))
        header = next(reader)
        index = [header.index(c) for c in columns]
        for row in reader:
            yield [row[i] for i in index]


@cache
def _provinces() -> dict[Era, dict[str, Province]]:
    """Provinces by era and code, with the aliases column of the CSVs (';'-separated)."""
    out: dict[Era, dict[str, Province]] = {"old": {}, "new": {}}
    for era in ("old", "new"):
        for r in _rows(f"provinces_{era}.csv"):
            aliases = tuple(a for a in r.get("aliases", "").split(";") if a)
            out[era][r["code"]] = Province(r["code"], r["name"], r["type"], era, aliases)
    return out


@cache
def _province_map() -> dict[str, tuple[str, ...]]:
    """Old province code -> new province code(s)."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in _rows("provinces_old.csv"):
        out[r["code"]].append(r["new_code"])
    return {k: tuple(v) for k, v in out.items()}


@cache
def _districts() -> dict[str, District]:
    """Old districts by code."""
    return {
        r["code"]: District(r["code"], r["name"], r["type"], r["province_code"])
        for r in _rows("districts_old.csv")
    }


class _Table(Mapping[str, T]):
    """Rows kept as raw tuples, turned into typed objects when read: loading 10,000 rows stays ~15 ms."""

    __slots__ = ("_rows", "_make")

    def __init__(self, rows: dict[str, tuple], make: Callable[..., T]) -> None:
        self._rows = rows
        self._make = make

    def __getitem__(self, key: str) -> T:
        return self._make(*self._rows[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _old_ward(code: str, name: str, wtype: str, province: str, district: str, alt: str, source: str) -> Ward:
    """A Ward of the old era from its CSV columns."""
    return Ward(code, name, wtype, province, "old", district, alt, source)


def _new_ward(code: str, name: str, wtype: str, province: str) -> Ward:
    """A Ward of the new era from its CSV columns."""
    return Ward(code, name, wtype, province, "new")


@cache
def _wards(era: Era) -> _Table[Ward]:
    """Communes of one era by code."""
    if era == "old":
        cols = ("code", "name", "type", "province_code", "district_code", "alt_name", "source")
        return _Table({r[0]: tuple(r) for r in _tuples("wards_old.csv", cols)}, _old_ward)
    cols = ("code", "name", "type", "province_code")
    return _Table({r[0]: tuple(r) for r in _tuples("wards_new.csv", cols)}, _new_ward)


def _link(ow: str, od: str, op: str, nw: str, np_: str, extent: str, default: str, sources: str) -> WardLink:
    """A WardLink from its CSV columns."""
    return WardLink(ow or None, od, op, nw, np_, extent, default == "1", sources)


_XWALK_COLUMNS = (
    "old_ward_code",
    "old_district_code",
    "old_province_code",
    "new_ward_code",
    "new_province_code",
    "extent",
    "default",
    "sources",
)


@cache
def _crosswalk() -> tuple[dict[str, list[tuple]], dict[str, list[tuple]], dict[str, list[tuple]]]:
    """Raw crosswalk rows indexed by old commune, by ward-less old district, and by new commune."""
    by_old: dict[str, list[tuple]] = defaultdict(list)
    by_district: dict[str, list[tuple]] = defaultdict(list)
    by_new: dict[str, list[tuple]] = defaultdict(list)
    for row in _tuples("ward_crosswalk.csv", _XWALK_COLUMNS):
        raw = tuple(row)
        (by_old[raw[0]] if raw[0] else by_district[raw[1]]).append(raw)
        by_new[raw[3]].append(raw)
    return dict(by_old), dict(by_district), dict(by_new)


def _links(rows: list[tuple] | None) -> tuple[WardLink, ...]:
    """WardLinks of raw crosswalk rows, most likely first."""
    return tuple(sorted((_link(*r) for r in rows or ()), key=_likelihood))


@cache
def _name_index(kind: str, era: Era) -> dict[str, tuple[str, ...]]:
    """name_key -> codes, for 'province', 'district' (old only) or 'ward' (alt spellings included)."""
    index: dict[str, list[str]] = defaultdict(list)

    def add(key: str, code: str) -> None:
        if key and code not in index[key]:
            index[key].append(code)

    if kind == "province":
        for p in _provinces()[era].values():
            add(name_key(p.name), p.code)
            for alias in p.aliases:
                add(name_key(alias), p.code)
    elif kind == "district":
        for d in _districts().values():
            add(name_key(d.name), d.code)
    else:
        alt = 5 if era == "old" else None  # column of alt_name in the raw old-ward rows
        for code, row in _wards(era)._rows.items():
            add(name_key(row[1]), code)
            if alt and row[alt]:
                add(name_key(row[alt]), code)
    return {k: tuple(v) for k, v in index.items()}


# --- lookups -----------------------------------------------------------------------------------


def province(code: str | int | None, era: Era = "old") -> Province | None:
    """A province by code in one era ('79', '079' and 79 are the same code)."""
    key = normalize_code(code, 2)
    return _provinces()[era].get(key) if key else None


def district(code: str | int | None) -> District | None:
    """An old district by code ('760', '0760' and 760 are the same code)."""
    key = normalize_code(code, 3)
    return _districts().get(key) if key else None


def ward(code: str | int | None, era: Era = "old") -> Ward | None:
    """A commune by code in one era ('26740', '026740' and 26740 are the same code)."""
    key = normalize_code(code, 5)
    return _wards(era).get(key) if key else None


def provinces(era: Era = "old") -> list[Province]:
    """All provinces of one era, by code."""
    return sorted(_provinces()[era].values(), key=lambda p: p.code)


def districts() -> list[District]:
    """All old districts, by code."""
    return [_districts()[k] for k in sorted(_districts())]


def wards(era: Era = "old") -> list[Ward]:
    """All communes of one era, by code."""
    table = _wards(era)
    return [table[k] for k in sorted(table)]


def ward_links() -> list[WardLink]:
    """Every crosswalk pair (old commune or ward-less island district -> new commune)."""
    by_old, by_district, _ = _crosswalk()
    return [_link(*r) for group in (*by_old.values(), *by_district.values()) for r in group]


def find_provinces(name: str, era: Era | None = None) -> list[Province]:
    """Provinces whose name matches (accents, case and prefixes such as 'Tỉnh', 'TP.' ignored); both eras if None."""
    key = name_key(name)
    eras: tuple[Era, ...] = (era,) if era else ("old", "new")
    return [_provinces()[e][c] for e in eras for c in _name_index("province", e).get(key, ())]


def find_districts(name: str, province_code: str | int | None = None) -> list[District]:
    """Old districts whose name matches, optionally within one old province."""
    pc = normalize_code(province_code, 2) if province_code is not None else None
    found = (_districts()[c] for c in _name_index("district", "old").get(name_key(name), ()))
    return [d for d in found if pc is None or d.province_code == pc]


def find_wards(
    name: str,
    era: Era = "old",
    province_code: str | int | None = None,
    district_code: str | int | None = None,
) -> list[Ward]:
    """Communes of one era whose name matches, optionally within a province (and, old era, a district)."""
    pc = normalize_code(province_code, 2) if province_code is not None else None
    dc = normalize_code(district_code, 3) if district_code is not None else None
    found = (_wards(era)[c] for c in _name_index("ward", era).get(name_key(name), ()))
    return [
        w for w in found if (pc is None or w.province_code == pc) and (dc is None or w.district_code == dc)
    ]


def new_province_codes(old_code: str | int | None) -> tuple[str, ...]:
    """Old province code -> the new province code(s) it became part of (one for every old province)."""
    key = normalize_code(old_code, 2)
    return _province_map().get(key, ()) if key else ()


def old_province_codes(new_code: str | int | None) -> tuple[str, ...]:
    """New province code -> the old province codes merged into it."""
    key = normalize_code(new_code, 2)
    return tuple(sorted(old for old, news in _province_map().items() if key in news))


def new_ward_links(old_ward_code: str | int | None) -> tuple[WardLink, ...]:
    """Crosswalk pairs of an old commune, most likely first (vietnamadminunits' default, then 'full')."""
    key = normalize_code(old_ward_code, 5)
    return _links(_crosswalk()[0].get(key)) if key else ()


def old_ward_links(new_ward_code: str | int | None) -> tuple[WardLink, ...]:
    """Crosswalk pairs of a new commune: the old communes (or island districts) it was formed from."""
    key = normalize_code(new_ward_code, 5)
    return _links(_crosswalk()[2].get(key)) if key else ()


def _likelihood(link: WardLink) -> tuple[int, int, int, str]:
    """Sort key: default pick first, then whole-unit moves, then pairs both sources agree on."""
    return (not link.default, link.extent != "full", link.sources != "both", link.new_ward_code)


# --- address resolution ------------------------------------------------------------------------

_MESSAGES = {
    "unknown_province": ("Mã tỉnh {v} không có trong danh mục", "province code {v} is not in the list"),
    "unknown_district": (
        "Mã huyện {v} không có trong danh mục cũ",
        "district code {v} is not in the old list",
    ),
    "unknown_ward": ("Mã xã {v} không có trong danh mục", "commune code {v} is not in the list"),
    "district_not_in_province": (
        "Huyện {v} không thuộc tỉnh đã cho",
        "district {v} is not in the given province",
    ),
    "ward_not_in_district": ("Xã {v} không thuộc huyện đã cho", "commune {v} is not in the given district"),
    "ward_not_in_province": ("Xã {v} không thuộc tỉnh đã cho", "commune {v} is not in the given province"),
    "eras_disagree": (
        "Địa chỉ mới {v} không khớp với địa chỉ cũ",
        "new-era unit {v} does not match the old address",
    ),
}


def _problem(code: str, value: object) -> Problem:
    """A Problem with its messages filled in."""
    vi, en = _MESSAGES[code]
    return Problem(code, vi.format(v=value), en.format(v=value))


def resolve_address(
    province_code: str | int | None = None,
    district_code: str | int | None = None,
    ward_code: str | int | None = None,
    *,
    new_province_code: str | int | None = None,
    new_ward_code: str | int | None = None,
) -> AddressResolution:
    """Old codes (MATINH/MAHUYEN/MAXA, padded or not) and/or new codes -> units of both eras."""
    problems: list[Problem] = []
    old_p = province(province_code, "old") if _given(province_code) else None
    old_d = district(district_code) if _given(district_code) else None
    old_w = ward(ward_code, "old") if _given(ward_code) else None
    for given, unit, kind in (
        (province_code, old_p, "unknown_province"),
        (district_code, old_d, "unknown_district"),
        (ward_code, old_w, "unknown_ward"),
    ):
        if _given(given) and unit is None:
            problems.append(_problem(kind, given))
    if old_d and old_p and old_d.province_code != old_p.code:
        problems.append(_problem("district_not_in_province", old_d.code))
    if old_w and old_d and old_w.district_code != old_d.code:
        problems.append(_problem("ward_not_in_district", old_w.code))
    if old_w and old_p and old_w.province_code != old_p.code:
        problems.append(_problem("ward_not_in_province", old_w.code))
    # the most specific unit decides the parents when the given parents are missing or inconsistent
    if old_w:
        old_d = old_d if old_d and old_d.code == old_w.district_code else district(old_w.district_code)
        old_p = province(old_w.province_code, "old")
    elif old_d:
        old_p = province(old_d.province_code, "old")

    links: tuple[WardLink, ...] = ()
    if old_w:
        links = new_ward_links(old_w.code)
    elif old_d and not _given(ward_code):
        # ward-less island districts became special zones (đặc khu) whole
        links = _links(_crosswalk()[1].get(old_d.code))
    candidates = tuple(w for w in (ward(link.new_ward_code, "new") for link in links) if w)

    new_p = province(new_province_code, "new") if _given(new_province_code) else None
    new_w = ward(new_ward_code, "new") if _given(new_ward_code) else None
    if _given(new_province_code) and new_p is None:
        problems.append(_problem("unknown_province", new_province_code))
    if _given(new_ward_code) and new_w is None:
        problems.append(_problem("unknown_ward", new_ward_code))
    if new_w and new_p and new_w.province_code != new_p.code:
        problems.append(_problem("ward_not_in_province", new_w.code))

    if new_w:
        if candidates and new_w.code not in {c.code for c in candidates}:
            problems.append(_problem("eras_disagree", new_w.code))
        new_p = new_p or province(new_w.province_code, "new")
        candidates = ()
    elif len(candidates) == 1:
        new_w, candidates = candidates[0], ()
    if new_p is None and old_p is not None:
        codes = new_province_codes(old_p.code)
        new_p = province(codes[0], "new") if len(codes) == 1 else None
    elif new_p is not None and old_p is not None and new_p.code not in new_province_codes(old_p.code):
        problems.append(_problem("eras_disagree", new_p.code))
    return AddressResolution(old_p, old_d, old_w, new_p, new_w, candidates, tuple(problems))


def resolve_qd130(
    matinh: str | None, mahuyen: str | None, maxa: str | None, on: dt.date | None = None
) -> AddressResolution:
    """MATINH_CU_TRU / MAHUYEN_CU_TRU / MAXA_CU_TRU of a QĐ130 export, whichever era its codes are in.

    Old codes are assumed (vendors kept sending them after the reform) unless the district is empty, the
    visit date is unknown or on/after 2025-07-01, and province + commune form a valid new-era pair.
    """
    if not _given(mahuyen) and _given(maxa) and (on is None or on >= REFORM_DATE):
        new_w = ward(maxa, "new")
        new_p = province(matinh, "new") if _given(matinh) else None
        if new_w and (new_p.code == new_w.province_code if new_p else not _given(matinh)):
            return resolve_address(new_province_code=matinh, new_ward_code=maxa)
    return resolve_address(matinh, mahuyen, maxa)


def _given(value: object) -> bool:
    """True for a non-blank value."""
    return value is not None and str(value).strip() != ""
