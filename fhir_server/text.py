"""Vietnamese-aware text normalisation shared by search indexing and patient matching."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# đ/Đ are letters of their own, not d + combining mark, so NFD alone does not fold them.
_EXTRA = str.maketrans({"đ": "d", "Đ": "d", "ð": "d"})


# Cached: index extraction folds the same codes, displays and names over and over.
@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lower-case, strip diacritics and collapse spaces: "NGUYỄN  Văn Đức" -> "nguyen van duc"."""
    decomposed = unicodedata.normalize("NFD", text.translate(_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def nfc(text: str) -> str:
    """Unicode NFC form, the one stored for display (HIS exports mix NFC and NFD)."""
    return unicodedata.normalize("NFC", text)
