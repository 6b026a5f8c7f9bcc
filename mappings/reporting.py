"""Health-department reporting knowledge: ICD-10 chapters/blocks and notifiable infectious diseases.

Data: mappings/reporting/icd10-chapters.yaml and notifiable-diseases.yaml (sources and dates in their headers).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache, lru_cache

import yaml

from mappings import MAPPINGS_DIR

# libyaml when present: the pure-Python parser takes ~10x longer on these files
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CODE_RE = re.compile(r"^([A-Z][0-9]{2})([0-9A-Z]{0,4})$")


@dataclass(frozen=True, slots=True)
class Chapter:
    """An ICD-10 chapter (I-XXII) with its inclusive category range."""

    number: str
    start: str
    end: str
    title_en: str
    title_vi: str
    title_vi_confirmed: bool = True

    @property
    def range(self) -> str:
        """'A00-B99'."""
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class Block:
    """An ICD-10 block of categories, identified by its range; parent is the enclosing block's range."""

    start: str
    end: str
    chapter: str
    parent: str | None = None

    @property
    def range(self) -> str:
        """'A00-A09'."""
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class NotifiableDisease:
    """A notifiable disease as one legal regime defines it on a given date."""

    id: str
    name_vi: str
    name_en: str
    group: str | None  # "A" | "B" | "C" | None (not named in a group)
    report: str | None  # "24h" | "48h" | "monthly" | None (deadline not in our sources)
    icd10: tuple[str, ...]
    icd10_from: str | None  # "tt54" (as published) | "lienthong" (proposed, verify) | None
    regime: str
    regime_status: str  # "" or "provisional"
    valid_from: dt.date
    valid_to: dt.date | None  # exclusive
    note: str = ""


def normalize_icd(code: str | None) -> str | None:
    """'a09.0', 'A09.0†', ' A090 ' -> 'A090' (no dot, upper case); None when it is not an ICD-10 code."""
    if not code:
        return None
    compact = re.sub(r"[\s.*†+!]", "", code.upper())
    return compact if _CODE_RE.match(compact) else None


@cache
def _load(name: str) -> dict:
    """One YAML file under mappings/reporting/ (read once)."""
    with open(MAPPINGS_DIR / "reporting" / name, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)  # a safe loader (C or Python)


def _in_range(category: str, start: str, end: str) -> bool:
    """True when a 3-character category lies in [start, end] (same letter-digit shape compares as text)."""
    return start <= category <= end


@cache
def chapters() -> tuple[Chapter, ...]:
    """The 22 ICD-10 chapters in order."""
    data = _load("icd10-chapters.yaml")
    out = []
    for c in data["chapters"]:
        start, end = c["range"].split("-")
        out.append(
            Chapter(c["chapter"], start, end, c["title_en"], c["title_vi"], c.get("title_vi_confirmed", True))
        )
    return tuple(out)


@cache
def blocks() -> tuple[Block, ...]:
    """All ICD-10 blocks in classification order (enclosing blocks before the blocks they contain)."""
    out = []
    for b in _load("icd10-chapters.yaml")["blocks"]:
        start, end = b["range"].split("-")
        out.append(Block(start, end, b["chapter"], b.get("parent")))
    return tuple(out)


def chapter_of(code: str | None) -> Chapter | None:
    """The chapter of an ICD-10 code ('U07.1' -> XXII, 'D50' -> III, 'D48.9' -> II), or None."""
    compact = normalize_icd(code)
    if not compact:
        return None
    return _chapter_of_category(compact[:3])


@lru_cache(maxsize=4096)
def _chapter_of_category(category: str) -> Chapter | None:
    """The chapter of a 3-character category (at most 26 x 100 of them, so cached)."""
    return next((c for c in chapters() if _in_range(category, c.start, c.end)), None)


def block_of(code: str | None) -> Block | None:
    """The innermost block containing an ICD-10 code ('C16.9' -> C15-C26, not C00-C97), or None."""
    compact = normalize_icd(code)
    if not compact:
        return None
    return _block_of_category(compact[:3])


@lru_cache(maxsize=4096)
def _block_of_category(category: str) -> Block | None:
    """The innermost block of a 3-character category (cached like _chapter_of_category)."""
    found = None
    for block in blocks():
        if _in_range(category, block.start, block.end):
            found = block  # later matches are nested inside earlier ones
    return found


# --- notifiable diseases -----------------------------------------------------------------------


def _compile(pattern: str) -> tuple[str, str, int]:
    """An icd10 pattern as (low, high, specificity): a code matches when low <= its prefix <= high."""
    bare = pattern.replace(".", "").replace(" ", "").upper()
    if "-" in bare:
        start, end = bare.split("-")
        return start[:3], end[:3], 3
    return bare, bare, len(bare)


def _score(compiled: tuple[tuple[str, str, int], ...], compact: str) -> int:
    """Specificity of the best pattern matching a normalized code: 0 = none, else the pattern's length."""
    best = 0
    for low, high, length in compiled:
        if length > best and low <= compact[:length] <= high:
            best = length
    return best


@cache
def _regimes() -> tuple[dict, ...]:
    """Regimes of notifiable-diseases.yaml with inherited disease lists resolved."""
    data = _load("notifiable-diseases.yaml")
    by_id = {r["id"]: r for r in data["regimes"]}
    out = []
    for regime in data["regimes"]:
        diseases = regime.get("diseases")
        if diseases is None and regime.get("inherit_diseases_from"):
            parent = by_id[regime["inherit_diseases_from"]]
            start = regime["valid_from"]
            # carried forward: entries still valid when this regime starts, with this regime's deadline
            diseases = [
                {**d, "from": None, "to": None, "report": regime.get("report", d.get("report"))}
                for d in parent.get("diseases", [])
                if d.get("to") is None or d["to"] > start
            ]
        out.append({**regime, "diseases": diseases or []})
    return tuple(out)


def _entry(regime: dict, d: dict) -> NotifiableDisease:
    """A NotifiableDisease from one YAML entry of a regime."""
    return NotifiableDisease(
        id=d["id"],
        name_vi=d["vi"],
        name_en=d["en"],
        group=d.get("group"),
        report=d.get("report"),
        icd10=tuple(str(c) for c in d.get("icd10") or ()),
        icd10_from=d.get("icd10_from"),
        regime=regime["id"],
        regime_status=regime.get("status", ""),
        valid_from=d.get("from") or regime["valid_from"],
        valid_to=d.get("to") or regime.get("valid_to"),
        note=d.get("note", ""),
    )


@cache
def _entries() -> tuple[tuple[NotifiableDisease, tuple[tuple[str, str, int], ...]], ...]:
    """Every disease entry of every regime with its compiled code patterns, in file order."""
    return tuple(
        (entry, tuple(_compile(p) for p in entry.icd10))
        for entry in (_entry(regime, d) for regime in _regimes() for d in regime["diseases"])
    )


@cache
def _entries_by_letter() -> dict[
    str, tuple[tuple[int, NotifiableDisease, tuple[tuple[str, str, int], ...]], ...]
]:
    """Entries (with file order and compiled patterns) under each first letter their codes use."""
    index: dict[str, list] = {}
    for order, (entry, compiled) in enumerate(_entries()):
        for letter in sorted({low[0] for low, _, _ in compiled}):
            index.setdefault(letter, []).append((order, entry, compiled))
    return {k: tuple(v) for k, v in index.items()}


def _in_force(entry: NotifiableDisease, on_date: dt.date) -> bool:
    """True when the entry applies on that date (valid_to exclusive)."""
    return entry.valid_from <= on_date and (entry.valid_to is None or on_date < entry.valid_to)


def notifiable_all(code: str | None, on_date: dt.date) -> list[NotifiableDisease]:
    """Every notifiable-disease entry selecting this ICD-10 code on that date, most specific first."""
    compact = normalize_icd(code)
    if not compact:
        return []
    hits = []
    for order, entry, compiled in _entries_by_letter().get(compact[0], ()):
        score = _score(compiled, compact)
        if score and _in_force(entry, on_date):
            hits.append((-score, order, entry))
    return [entry for _, _, entry in sorted(hits, key=lambda h: (h[0], h[1]))]


def notifiable(code: str | None, on_date: dt.date) -> NotifiableDisease | None:
    """The notifiable disease this ICD-10 code selects on that date (most specific entry), or None."""
    hits = notifiable_all(code, on_date)
    return hits[0] if hits else None


def notifiable_diseases(on_date: dt.date) -> list[NotifiableDisease]:
    """All notifiable-disease entries in force on a date, in file order."""
    return [entry for entry, _ in _entries() if _in_force(entry, on_date)]
