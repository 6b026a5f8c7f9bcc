"""Code lists for the QĐ130 checker: shipped CSV/YAML lists, date-versioned lists, optional loaders."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from mappings import MAPPINGS_DIR, load_yaml

Contains = Callable[[str], bool]


@dataclass(frozen=True)
class CodeList:
    """One usable list: a membership test and the title/source shown in messages."""

    name: str
    contains: Contains
    title_vi: str
    title_en: str
    until: str | None = None  # last episode date (yyyyMMdd) the list applies to


@dataclass(frozen=True)
class Unavailable:
    """Why a list cannot be used (not shipped, incomplete, loader missing, episode out of range)."""

    reason_vi: str
    reason_en: str


def _csv_codes(relative: str) -> tuple[frozenset[str], bool]:
    """Codes of a shipped CSV list and whether its header declares it complete."""
    path = MAPPINGS_DIR / "qd130" / relative
    codes: set[str] = set()
    complete = True
    with open(path, encoding="utf-8") as fh:
        lines = []
        for line in fh:
            if line.startswith("#"):
                if line[1:].strip().lower().startswith("status: incomplete"):
                    complete = False
                continue
            lines.append(line)
    for row in csv.DictReader(lines):
        code = (row.get("code") or "").strip()
        if code:
            codes.add(code)
    return frozenset(codes), complete


def _titles(spec: Mapping, name: str) -> tuple[str, str]:
    """Vietnamese and English title of a list (falls back to its source, then its name)."""
    title = spec.get("title") or {}
    source = spec.get("source")
    return title.get("vi") or source or name, title.get("en") or source or name


def _pair(spec: Mapping | None, default: str) -> tuple[str, str]:
    """A {vi, en} mapping as a tuple, with a default for both."""
    spec = spec or {}
    return spec.get("vi", default), spec.get("en", default)


def _from_loader(path: str) -> Contains:
    """Import module:function; raises ImportError/AttributeError when it is not installed."""
    module, _, func = path.partition(":")
    return getattr(importlib.import_module(module), func)


class CodeLists:
    """All lists named in rules.yaml, resolved once; `overrides` replace a list by a membership test."""

    def __init__(self, config: Mapping, overrides: Mapping[str, Contains | set | frozenset] | None = None):
        """Resolve every list of the `lists` section (overrides first)."""
        self._versions: dict[str, list[CodeList]] = {}
        self._unavailable: dict[str, Unavailable] = {}
        self._later: dict[str, Unavailable] = {}
        overrides = dict(overrides or {})
        for name, spec in config.items():
            if name in overrides:
                test = overrides[name]
                fn = test if callable(test) else frozenset(test).__contains__
                vi, en = _titles(spec, name)
                self._versions[name] = [CodeList(name, fn, vi, en)]
                continue
            self._resolve(name, spec)

    def _resolve(self, name: str, spec: Mapping) -> None:
        """Load one list (or each of its versions) or record why it is unavailable."""
        reason = _pair(spec.get("reason"), f"list {name} is not available")
        if spec.get("available") is False:
            self._unavailable[name] = Unavailable(*reason)
            return
        if "versions" in spec:
            out = []
            for v in spec["versions"]:
                got = self._one(name, {**v, "title": spec.get("title")})
                if isinstance(got, CodeList):
                    out.append(got)
            if out:
                self._versions[name] = out
                self._later[name] = Unavailable(*_pair(spec.get("later"), reason[1]))
            else:
                self._unavailable[name] = Unavailable(*reason)
            return
        got = self._one(name, spec)
        if isinstance(got, CodeList):
            self._versions[name] = [got]
        else:
            self._unavailable[name] = got

    def _one(self, name: str, spec: Mapping) -> CodeList | Unavailable:
        """Build one list from file / codes_yaml / values / loader."""
        vi, en = _titles(spec, name)
        until = spec.get("until")
        reason = Unavailable(*_pair(spec.get("reason"), f"list {name} is not available"))
        if "file" in spec:
            codes, complete = _csv_codes(spec["file"])
            if not complete:
                return reason
            return CodeList(name, codes.__contains__, vi, en, until)
        if "codes_yaml" in spec:
            codes = frozenset(load_yaml("qd130/codes.yaml")["maps"][spec["codes_yaml"]]["codes"])
            return CodeList(name, codes.__contains__, vi, en, until)
        if "values" in spec:
            return CodeList(name, frozenset(str(v) for v in spec["values"]).__contains__, vi, en, until)
        if "loader" in spec:
            try:
                fn = _from_loader(spec["loader"])
                fn("A00")  # a data file missing behind the loader shows up here, not mid-check
            except (ImportError, AttributeError, OSError, LookupError, ValueError):
                return reason
            return CodeList(name, fn, vi, en, until)
        return reason

    def static_reason(self, name: str) -> Unavailable | None:
        """Why a list can never be used in this run (None when some version is usable)."""
        if name in self._versions:
            return None
        return self._unavailable.get(name, Unavailable(f"không có danh mục {name}", f"no list named {name}"))

    def get(self, name: str, episode_date: str | None) -> CodeList | Unavailable:
        """The list in force on the episode date (yyyyMMdd), or why none is."""
        versions = self._versions.get(name)
        if not versions:
            return self.static_reason(name)  # type: ignore[return-value]
        if len(versions) == 1 and versions[0].until is None:
            return versions[0]
        if not episode_date:
            return Unavailable("không xác định được ngày của hồ sơ (NGAY_RA/NGAY_VAO)", "no episode date")
        for v in versions:
            if v.until is None or episode_date <= v.until:
                return v
        return self._later[name]


@lru_cache(maxsize=1)
def default_lists() -> CodeLists:
    """The shipped lists (cached: they are read-only at run time)."""
    return CodeLists(load_yaml("qd130/rules.yaml")["lists"])
