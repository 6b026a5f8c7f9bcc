"""Vendor profiles (data in mappings/vendors/*.yaml): quirks of one HIS product, selected or detected."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from mappings import MAPPINGS_DIR

VENDOR_DIR = MAPPINGS_DIR / "vendors"


@dataclass(frozen=True)
class VendorProfile:
    """Formatting quirks and local code maps of one vendor's QĐ130 exports."""

    name: str
    title: str = ""
    decimal_separator: str = "."
    empty_values: frozenset = frozenset({""})
    datetime_formats: tuple = ("%Y%m%d%H%M",)
    date_formats: tuple = ("%Y%m%d",)
    code_maps: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    facility: dict = field(default_factory=dict)
    detect: dict = field(default_factory=dict)
    source: str = ""
    # An ICD-10 code not in the list (or malformed): "warning" keeps the record, "error" rejects it.
    icd10_unknown: str = "warning"

    @property
    def is_plain(self) -> bool:
        """True when no value rewriting is needed (fast path)."""
        return self.empty_values == frozenset({""}) and not self.code_maps and not self.defaults


def _icd10_policy(value: object, source: str) -> str:
    """The vendor's unknown-ICD-10 policy, refusing anything but warning | error."""
    text = str(value).strip().lower()
    if text not in ("warning", "error"):
        raise ValueError(
            f"{source or 'vendor profile'}: icd10_unknown must be warning or error, not {value!r}"
        )
    return text


def _from_dict(data: dict, source: str) -> VendorProfile:
    """Build a profile from its YAML dict, with the standard's values as defaults."""
    return VendorProfile(
        name=str(data["name"]),
        title=str(data.get("title", "")),
        decimal_separator=str(data.get("decimal_separator", ".")),
        empty_values=frozenset(str(v) for v in (data.get("empty_values") or [""])) | {""},
        datetime_formats=tuple(data.get("datetime_formats") or ("%Y%m%d%H%M",)),
        date_formats=tuple(data.get("date_formats") or ("%Y%m%d",)),
        code_maps={
            k: {str(a): str(b) for a, b in (v or {}).items()}
            for k, v in (data.get("code_maps") or {}).items()
        },
        defaults={k: str(v) for k, v in (data.get("defaults") or {}).items()},
        facility=dict(data.get("facility") or {}),
        detect=dict(data.get("detect") or {}),
        source=source,
        icd10_unknown=_icd10_policy(data.get("icd10_unknown", "warning"), source),
    )


def _search_dirs(extra: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for profiles; later ones override earlier ones of the same name. `extra` is
    one folder or an os.pathsep-separated list (LIENTHONG_VENDOR_PATH, via Settings.vendor_path)."""
    dirs = [VENDOR_DIR]
    if extra:
        dirs += [Path(p) for p in str(extra).split(os.pathsep) if p]
    return dirs


@lru_cache(maxsize=32)
def _load_all(dirs: tuple[Path, ...]) -> dict[str, VendorProfile]:
    """Load every *.yaml profile of the given directories (cached per directory list)."""
    out: dict[str, VendorProfile] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.y*ml")):
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
            if "name" not in data:
                data["name"] = path.stem
            out[str(data["name"])] = _from_dict(data, str(path))
    return out


def reload_vendors() -> None:
    """Forget cached profiles (after editing a profile file at run time)."""
    _load_all.cache_clear()


def vendor_profiles(extra_dir: str | os.PathLike | None = None) -> dict[str, VendorProfile]:
    """All known vendor profiles by name (shipped + LIENTHONG_VENDOR_PATH + extra_dir)."""
    return _load_all(tuple(_search_dirs(extra_dir)))


def get_vendor(name: str | None, extra_dir: str | os.PathLike | None = None) -> VendorProfile:
    """Return the named profile (None → standard); unknown names raise ValueError."""
    profiles = vendor_profiles(extra_dir)
    key = name or "standard"
    if key not in profiles:
        raise ValueError(f"unknown vendor profile {key!r}; available: {', '.join(sorted(profiles))}")
    return profiles[key]


def detect_vendor(payload: bytes, extra_dir: str | os.PathLike | None = None) -> VendorProfile:
    """Pick the first profile whose detection hints match the envelope head, else the standard."""
    head = payload[:4096]
    profiles = vendor_profiles(extra_dir)
    for name in sorted(profiles):
        hints = profiles[name].detect.get("envelope_contains") or []
        if any(h.encode("utf-8") in head for h in hints):
            return profiles[name]
    return profiles.get("standard") or _from_dict({"name": "standard"}, "")
