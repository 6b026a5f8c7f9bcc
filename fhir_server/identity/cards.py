"""Structure checks for Vietnamese person identifiers: citizen id (CCCD) and health-insurance card (BHYT)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mappings import load_yaml

_DIGITS12 = re.compile(r"^\d{12}$")
_DIGITS10 = re.compile(r"^\d{10}$")
# Legacy card: 2-letter beneficiary group, benefit level 1-5, 2-digit issuing province, 10-digit BHXH number.
_LEGACY15 = re.compile(r"^([A-Z]{2})([1-5])(\d{2})(\d{10})$")


@lru_cache(maxsize=1)
def _cccd_tables() -> tuple[frozenset[str], dict[str, tuple[int, str]]]:
    data = load_yaml("identity/cccd_provinces.yaml")
    provinces = frozenset(str(k).zfill(3) for k in data["provinces"])
    century_sex = {str(k): (int(v[0]), str(v[1])) for k, v in data["century_sex"].items()}
    return provinces, century_sex


@dataclass(frozen=True, slots=True)
class CccdInfo:
    """What the 12 digits of a CCCD say about its holder."""

    number: str
    province: str
    sex: str  # male | female
    birth_year_2: int  # last two digits of the birth year
    century: int

    @property
    def birth_year(self) -> int:
        """Full birth year implied by the century digit and the two year digits."""
        return self.century + self.birth_year_2


def clean_number(value: str | None) -> str:
    """Strip spaces, dots and dashes that HIS screens insert into card numbers; upper-case letters."""
    if not value:
        return ""
    return re.sub(r"[\s.\-]", "", str(value)).upper()


def parse_cccd(value: str | None) -> CccdInfo | None:
    """Parse a CCCD if it is structurally valid (12 digits, known province, century+sex digit), else None."""
    number = clean_number(value)
    if not _DIGITS12.match(number):
        return None
    provinces, century_sex = _cccd_tables()
    if number[:3] not in provinces:
        return None
    century, sex = century_sex[number[3]]
    return CccdInfo(number, number[:3], sex, int(number[4:6]), century)


def cccd_problems(value: str | None, birth_year: int | None = None, sex: str | None = None) -> list[str]:
    """Reasons a CCCD is unusable or inconsistent with the known birth year / sex (empty list = fine)."""
    number = clean_number(value)
    if not _DIGITS12.match(number):
        return ["not 12 digits"]
    provinces, _ = _cccd_tables()
    if number[:3] not in provinces:
        return [f"unknown province code {number[:3]}"]
    info = parse_cccd(number)
    assert info is not None
    problems = []
    if birth_year is not None and info.birth_year != birth_year:
        problems.append(f"birth year {info.birth_year} in the number, record says {birth_year}")
    if sex in ("male", "female") and info.sex != sex:
        problems.append(f"sex digit says {info.sex}, record says {sex}")
    return problems


@dataclass(frozen=True, slots=True)
class BhytCard:
    """A parsed BHYT card number; `stable` identifies the person across card re-issues."""

    number: str
    form: str  # legacy15 | bhxh10 | cccd12
    stable: str  # BHXH number (10 digits) or the CCCD (12 digits)
    group: str | None = None  # beneficiary group code, e.g. DN, HT, TE (legacy form only)
    level: int | None = None  # benefit level 1-5 (legacy form only)
    province: str | None = None  # issuing province (legacy form only)

    @property
    def key_kind(self) -> str:
        """Which person-key namespace the stable part belongs to: 'bhxh' or 'cccd'."""
        return "cccd" if self.form == "cccd12" else "bhxh"


def parse_bhyt(value: str | None) -> BhytCard | None:
    """Parse a BHYT card number in any of its three forms (15-char legacy, 10-digit BHXH, 12-digit CCCD)."""
    number = clean_number(value)
    m = _LEGACY15.match(number)
    if m:
        # The prefix changes when the holder's beneficiary group changes; only the BHXH number is stable.
        return BhytCard(number, "legacy15", m.group(4), m.group(1), int(m.group(2)), m.group(3))
    if _DIGITS10.match(number):
        return BhytCard(number, "bhxh10", number)
    if _DIGITS12.match(number) and parse_cccd(number) is not None:
        return BhytCard(number, "cccd12", number)
    return None


def bhyt_stable_part(value: str | None) -> str | None:
    """The part of a BHYT card number that stays with the person (BHXH number or CCCD), or None."""
    card = parse_bhyt(value)
    return card.stable if card else None
