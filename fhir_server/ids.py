"""Deterministic FHIR ids, so re-sending the same source data updates instead of duplicating."""

from __future__ import annotations

import uuid

# Fixed namespace: changing it would re-key every resource ever ingested.
_NAMESPACE = uuid.UUID("6f1c2a52-6b53-4a8e-9b1e-4c1f0d1e7a11")


def deterministic_id(kind: str, *parts: str | int | None) -> str:
    """Return a stable FHIR id (UUID v5) for a resource kind and its source key parts."""
    name = kind + "|" + "|".join("" if p is None else str(p).strip() for p in parts)
    return str(uuid.uuid5(_NAMESPACE, name))


def new_id() -> str:
    """A server-assigned id (UUID v4)."""
    return str(uuid.uuid4())
