"""Mapping knowledge as data: profile sets, code maps, vendor profiles. This module only loads it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

MAPPINGS_DIR = Path(__file__).parent


@lru_cache(maxsize=None)
def load_yaml(relative_path: str) -> dict:
    """Load a YAML data file shipped under mappings/ (cached: these files are read-only at run time)."""
    with open(MAPPINGS_DIR / relative_path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def profile_set(name: str = "hl7vn") -> dict:
    """Identifier systems, extension and profile URLs of one VN Core guide (hl7vn | ehealth)."""
    path = MAPPINGS_DIR / "profiles" / f"{name}.yaml"
    if not path.exists():
        raise ValueError(
            f"unknown profile set {name!r}; available: "
            + ", ".join(sorted(p.stem for p in (MAPPINGS_DIR / "profiles").glob("*.yaml")))
        )
    return load_yaml(f"profiles/{name}.yaml")
